from skiplock.main import main

raise SystemExit(main())
