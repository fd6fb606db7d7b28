from c2ws.cli import main

main()
