"""The ledger: what the app makes outside CloudFormation, recorded when it is made.

Fleet provisioning makes a thing, a certificate and an IoT policy per Pi, outside the stack. The
pre-provisioning hook records them here before it allows the device (infra/fleet_hook/handler.py),
one item per device keyed by thing name; teardown deletes what an item names and removes the item
only once all of it is gone (infra/lifecycle/ledger.py), so a re-run after a failure resumes.
The table outlives `cdk destroy` (retained) because teardown may still be working through it;
teardown deletes it when it is empty and the stack is gone.
"""
from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from infra.config import RainEdgeConfig
from infra.fleet_hook.handler import LEDGER_KEY


class DeviceLedger(Construct):
    """One on-demand DynamoDB table, named exactly, carrying the app's tag like every stack resource."""

    def __init__(self, scope: Construct, construct_id: str, *, config: RainEdgeConfig) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            # TableName: 3-255 of [a-zA-Z0-9_.-] (DynamoDB API reference, CreateTableInput); the prefix fits.
            table_name=config.ledger_table_name,
            partition_key=dynamodb.Attribute(name=LEDGER_KEY, type=dynamodb.AttributeType.STRING),
            # A few writes per device joining, a scan per teardown: on-demand costs next to nothing.
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            removal_policy=RemovalPolicy.RETAIN,
        )

    @property
    def outputs(self) -> dict[str, str]:
        return {"LedgerTableName": self.table.table_name}
