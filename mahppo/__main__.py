from mahppo.cli import main

raise SystemExit(main())
