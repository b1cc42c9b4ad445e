"""`python -m confd`: the same as the `confd` command."""

from confd.cli.main import main

if __name__ == "__main__":
    main()
