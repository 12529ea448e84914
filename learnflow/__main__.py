from learnflow.cli import main

main()
