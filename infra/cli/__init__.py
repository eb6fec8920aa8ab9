"""`python -m infra.cli <command>`: one module per command, each exposing `add_parser(subparsers)`.

A command module registers its sub-parser and sets `func=handler` on it; the handler takes the parsed
namespace and returns the process exit status. Modules are discovered, so adding a command is adding a file.
"""
