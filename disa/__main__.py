from disa.cli import main

raise SystemExit(main())
