from rlexp.commands import main

raise SystemExit(main())
