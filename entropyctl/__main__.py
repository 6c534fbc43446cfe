from entropyctl.cli import main

main()
