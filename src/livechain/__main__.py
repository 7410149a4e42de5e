from livechain.cli import main

raise SystemExit(main())
