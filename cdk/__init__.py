"""The AWS CDK app of the template: one stack, one construct per concern.

- ``capture.py``: capture bucket (+ access-log bucket), optional Firehose stream, Glue/Athena table
- ``serving.py``: inference Lambda, ``live`` alias, REST API, CodeDeploy canary
- ``drift_check.py``: drift-check Lambda + schedule
- ``alerting.py``: SNS topic, the alarms of ``alarms.py`` (each construct above is asked for the metrics its
  alarms read), one composite alarm per cause family; ``model_metrics.py``: the model namespace's series
- ``dashboard.py``: the CloudWatch dashboard (every model series a metric of ``modelserve/metric_catalogue.py``)
- ``bundling.py`` (+ ``asset_trim.py``): Docker-free Lambda assets
- ``stack.py`` wires them; ``application.py`` builds the app from cdk.json context
- ``alarms.py``: every alarm's definition (pure Python: the stack and the local demo both read it)
"""
