from lightsam.cli import main

main()
