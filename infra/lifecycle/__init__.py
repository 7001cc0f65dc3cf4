"""Lifecycle tools for a real AWS account: preflight, device-setup, status, destroy, audit.

Run as `python -m infra.lifecycle <command>`; the Makefile targets deploy, device-setup, status and
destroy call it. Everything here talks to AWS only through the clients in `aws.py`, so the tests
drive the same code against moto (and a botocore Stubber for GreengrassV2).
"""
