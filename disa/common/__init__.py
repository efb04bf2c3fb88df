"""What every part of the CLI uses: AWS clients for one target, the one user-facing error,
console output, the project's paths, and the AWS helpers the drills and tests share."""
