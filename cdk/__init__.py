"""The AWS CDK app of the template: one stack, one construct per concern.

- ``capture.py``: capture bucket (+ access-log bucket), optional Firehose stream, Glue/Athena table
- ``serving.py``: inference Lambda, ``live`` alias, REST API, CodeDeploy canary
- ``monitoring.py``: drift-check Lambda + schedule, SNS topic, alarms from ``alarms.py``, dashboard
- ``bundling.py`` (+ ``asset_trim.py``): Docker-free Lambda assets
- ``stack.py`` wires them; ``application.py`` builds the app from cdk.json context
- ``alarms.py``: every alarm's definition (pure Python: the stack and the local demo both read it)
- ``settings_table.py``: the settings table of the docs, generated from ``Settings.describe()``
"""
