"""The `disa` command line: package, deploy and operate a Disa stack on AWS or any
AWS-compatible endpoint."""
