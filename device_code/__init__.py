"""Edge code of rainedge: the three Greengrass Lambda functions and what they share.

Handler modules (Lambda handler strings): `device_code.sensor.handler`,
`device_code.shadow_writer.handler`, `device_code.inference.handler`. Business logic never
imports AWS libraries; Greengrass is reached through `device_code.port.GreengrassPort`.
"""
