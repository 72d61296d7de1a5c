"""Deployment infrastructure: the CloudFormation merge template that ``chalice package`` folds in."""
