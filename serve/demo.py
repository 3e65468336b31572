"""The Serve step of ``mahppo demo``: deploy a checkpoint on 127.0.0.1, ask for one frame, shut down."""

from __future__ import annotations

from typing import Any


def serve_and_query(checkpoint: str, port: int = 8765, host: str = "127.0.0.1",
                    shutdown_ray: bool = False) -> dict[str, Any]:
    """Serve ``checkpoint`` on the running (or a new local) Ray, send the test scenario's first state
    pool to ``POST /v1/decide`` over HTTP, and return the model card and the decisions. Ray is shut down
    after if this call started it or ``shutdown_ray`` (the caller is done with Ray), else only Serve."""
    import ray
    from ray import serve

    from mahppo.serve.app import QUIET_LOGGING, build_app
    from mahppo.serve.client import DecisionClient, check_port_free, example_pool
    from mahppo.serve.lifecycle import run_app

    check_port_free(host, port)
    started = False
    if not ray.is_initialized():
        from mahppo.serve.proxy import enable_for_local_ray

        enable_for_local_ray()  # the proxy's read deadline and body buffering (slow clients)
        from mahppo.runtime.logs import ensure_configured, ray_init_kwargs

        ensure_configured()
        ray.init(address="local", include_dashboard=False, **ray_init_kwargs())
        started = True
    try:
        serve.start(http_options={"host": host, "port": port}, logging_config=QUIET_LOGGING)
        run_app(build_app({"checkpoint": checkpoint}), name="mahppo-demo", route_prefix="/",
                logging_config=QUIET_LOGGING)
        client = DecisionClient(f"http://{host}:{port}")
        info = client.model()
        pool = example_pool(info)
        decisions = client.decide(pool)
        reply = {"url": f"http://{host}:{port}/v1/decide", "policy_id": info["policy_id"], "state_pool": pool,
                 "decisions": decisions}
        if info.get("max_ues"):  # a shared policy: a UE joins the cell, and the same policy decides it
            joined = [*pool, {"ue_id": "joined-phone", "dnn": "mobilenetv2", "tasks_left": 120, "total_tasks": 120,
                              "local_time_left_s": 0.0, "bits_left": 0.0, "distance_m": 20.0}]
            reply.update(joined_pool=joined, joined_decisions=client.decide(joined))
            # the same first frame decided by the lookahead (rollouts of the policy on a simulator of the cell)
            reply["lookahead_decisions"] = client.decide(pool, lookahead=True)
        client.close()
        return reply
    finally:
        if started or shutdown_ray:
            # Ray goes down with everything on it. serve.shutdown() first would only add the controller's
            # benign "graceful_shutdown failed ... will be retried" line from the raylet.
            ray.shutdown()
        else:
            serve.shutdown()
