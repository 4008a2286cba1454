from rlexp.cli import main

raise SystemExit(main())
