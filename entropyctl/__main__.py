from entropyctl.cli.main import main

main()
