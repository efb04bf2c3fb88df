"""Code that runs in Disa's Lambda functions: handlers, logic, data access, models."""
