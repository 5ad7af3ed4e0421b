from resdeep.cli import main

main()
