from tsops.cli.main import main

main()
