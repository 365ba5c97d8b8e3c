from sroamd.cli import main

raise SystemExit(main())
