from tickstream.cli.app import main

main()
