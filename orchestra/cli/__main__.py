from orchestra.cli import run_main

run_main()
