"""Entry point the Pulumi language host runs (`main: infra/` in Pulumi.yaml); the program is infra.program."""

from infra.program import main

main()
