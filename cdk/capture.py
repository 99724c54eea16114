"""Capture storage: the bucket (captures/, feedback/, reports/), its access-log bucket, the optional
Firehose stream, and the Glue table Athena queries the captures through."""

from __future__ import annotations

import re

import aws_cdk as cdk
from aws_cdk import aws_athena as athena
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk.alarms import AlarmSpec, Source
from modelserve.records import (
    ATHENA_FEEDBACK_TABLE,
    ATHENA_REJECTS_TABLE,
    AUDIT_ROOT,
    CAPTURE_LINES_FILTER_PATTERN,
    CAPTURE_ROOT,
    FEEDBACK_ROOT,
    LABELS_DIR,
    PREDICTED_DIR,
    REJECTS_ROOT,
    REPORTS_ROOT,
    SAMPLES_ROOT,
)
from modelserve.schema import BundleManifest, FeatureKind
from modelserve.settings import ENV_ATHENA_WORKGROUP, ENV_CAPTURE_BUCKET, ENV_CAPTURES_TABLE, ENV_FIREHOSE_STREAM, Settings, SettingsError

from .common import retention
from .nag import acknowledge

# Environment variables the functions read (names independent of any setting)
FIREHOSE_ERROR_ROOT = "capture-errors"
ATHENA_RESULTS_ROOT = "athena-results"  # the drift check's query results (drift_athena=auto|on), kept a day
# capture_sink=logs: each record filed by its own model, version and event hour (dynamic partitioning),
# the S3 sink's prefixes, so the drift check and Athena read only the hours they need
EVENT_HOUR_PREFIX = (
    f"{CAPTURE_ROOT}/model=!{{partitionKeyFromQuery:model}}/version=!{{partitionKeyFromQuery:version}}/"
    "dt=!{partitionKeyFromQuery:dt}/hour=!{partitionKeyFromQuery:hour}/"
)
# the partition keys, read from each capture line by Firehose's jq (event_time: 2026-11-25T17:04:05.123456Z)
PARTITION_KEYS_QUERY = "{model: .model_name, version: .model_version, dt: .event_time[0:10], hour: .event_time[11:13]}"
S3_MIN_IA_DAYS = 30  # S3 refuses a STANDARD_IA transition earlier than 30 days
# the capture-line subscription's name: a dimension of its AWS/Logs delivery metrics, which the alarms read
CAPTURE_LINES_FILTER_NAME = "capture-lines"


class CaptureStorage(Construct):
    """Everything that stores what the model saw. Exposes ``bucket``, ``stream`` (or None),
    ``environment`` for the inference function, and grant helpers scoped to key prefixes. A ``MetricSource``
    for the alerting (cdk/alerting.py): the Firehose stream's delivery metrics, when there is one."""

    metrics_error_log = None  # runs no code of ours

    def __init__(self, scope: Construct, id: str, *, settings: Settings, manifest: BundleManifest) -> None:
        super().__init__(scope, id)
        self.settings = settings
        self.manifest = manifest
        if 0 < settings.capture_transition_days < S3_MIN_IA_DAYS:
            raise SettingsError(
                f"invalid settings:\n  setting 'capture_transition_days' = {settings.capture_transition_days!r}: "
                f"S3 moves objects to Infrequent Access after {S3_MIN_IA_DAYS} days at the earliest "
                f"(allowed: 0 for never, or >= {S3_MIN_IA_DAYS})"
            )

        self.key: kms.Key | None = None
        if settings.bucket_encryption == "kms":
            self.key = kms.Key(
                self,
                "Key",
                description=f"Capture bucket of model {manifest.model_name}",
                enable_key_rotation=True,
                removal_policy=cdk.RemovalPolicy.RETAIN,
            )

        # Server access logs: SSE-S3 is the only encryption S3 log delivery supports.
        self.log_bucket = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=False,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-access-logs", expiration=cdk.Duration.days(max(settings.log_retention_days, 1))),
                s3.LifecycleRule(id="abort-multipart", abort_incomplete_multipart_upload_after=cdk.Duration.days(7)),
            ],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.log_bucket,
            "AwsSolutions-S1",
            "This is the server-access-log bucket of the capture bucket; logging it into itself would loop.",
        )

        expiry = cdk.Duration.days(settings.capture_expiry_days)
        transitions = (
            [
                s3.Transition(
                    storage_class=s3.StorageClass.INFREQUENT_ACCESS, transition_after=cdk.Duration.days(settings.capture_transition_days)
                )
            ]
            if settings.capture_transition_days
            else None
        )
        noncurrent = cdk.Duration.days(settings.capture_noncurrent_days)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS if self.key else s3.BucketEncryption.S3_MANAGED,
            encryption_key=self.key,
            bucket_key_enabled=True if self.key else None,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            # a capture, label or report written again under its key (or deleted) stays readable as a
            # noncurrent version for capture_noncurrent_days: monitoring and training data are never
            # replaced unnoticed (S3 has no "create only" condition an IAM policy could require)
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.log_bucket,
            server_access_logs_prefix="capture-bucket/",
            lifecycle_rules=[
                # what the functions record: kept capture_expiry_days, moved after capture_transition_days
                *(
                    s3.LifecycleRule(
                        id=rule_id,
                        prefix=f"{root}/",
                        expiration=expiry,
                        transitions=transitions,
                        noncurrent_version_expiration=noncurrent,
                    )
                    for rule_id, root in (("captures", CAPTURE_ROOT), ("feedback", FEEDBACK_ROOT), ("rejects", REJECTS_ROOT))
                ),
                # the audit sample holds captured rows: it expires with them, and the drift check rewrites it
                # every run, so its noncurrent versions must expire too
                s3.LifecycleRule(id="audit", prefix=f"{AUDIT_ROOT}/", expiration=expiry, noncurrent_version_expiration=noncurrent),
                s3.LifecycleRule(
                    id="capture-errors", prefix=f"{FIREHOSE_ERROR_ROOT}/", expiration=expiry, noncurrent_version_expiration=noncurrent
                ),
                s3.LifecycleRule(
                    id="athena-results",
                    prefix=f"{ATHENA_RESULTS_ROOT}/",
                    expiration=cdk.Duration.days(1),
                    noncurrent_version_expiration=cdk.Duration.days(1),
                ),
                s3.LifecycleRule(
                    id="reports",
                    prefix=f"{REPORTS_ROOT}/",
                    expiration=cdk.Duration.days(settings.report_expiry_days),
                    noncurrent_version_expiration=noncurrent,
                ),
                # hour samples only serve windows that still cover their hour; rewritten ones are worth nothing
                s3.LifecycleRule(
                    id="hour-samples",
                    prefix=f"{SAMPLES_ROOT}/",
                    expiration=cdk.Duration.days(-(-settings.window_hours // 24) + 2),
                    noncurrent_version_expiration=cdk.Duration.days(1),
                ),
                # an expired object leaves a delete marker over its noncurrent version: removed once that is gone
                s3.LifecycleRule(id="delete-markers", expired_object_delete_marker=True),
                s3.LifecycleRule(id="abort-multipart", abort_incomplete_multipart_upload_after=cdk.Duration.days(7)),
            ],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )

        self.stream: firehose.CfnDeliveryStream | None = None
        self.subscription: logs.CfnSubscriptionFilter | None = None  # capture_sink=logs (subscribe_capture_lines)
        self.database, self.table = self._glue()
        if settings.capture_sink == "firehose":
            self.stream = self._firehose()
        elif settings.capture_sink == "logs":
            self.stream = self._firehose(from_logs=True)
        self.workgroup = self._athena_workgroup() if settings.drift_athena != "off" else None
        # the labels the Athena path joins with the captures (the performance check on every labelled row)
        self.feedback_table = self._feedback_table() if self.workgroup is not None else None
        # the refused requests, so their split by reason and field is counted over every one of them
        self.rejects_table = self._rejects_table() if self.workgroup is not None else None

    # ------------------------------------------------------------ metrics the alarms read

    @property
    def alarm_sources(self) -> tuple[Source, ...]:
        return (("firehose",) if self.stream is not None else ()) + (("logs",) if self.settings.capture_sink == "logs" else ())

    def alarm_metric(self, spec: AlarmSpec) -> cloudwatch.IMetric:
        """The metric an alarm on the capture stream (``AWS/Firehose``) or its log subscription (``AWS/Logs``) reads."""
        if spec.source == "logs":
            if self.subscription is None:
                raise ValueError(f"alarm {spec.id} watches the capture-line subscription, but the stack has none")
            dimensions = {
                "LogGroupName": self.subscription.log_group_name,
                "DestinationType": "Firehose",
                "FilterName": CAPTURE_LINES_FILTER_NAME,
            }
        elif self.stream is None:
            raise ValueError(f"alarm {spec.id} watches the Firehose stream, but the stack has none")
        else:
            dimensions = {"DeliveryStreamName": self.stream.ref}
        return cloudwatch.Metric(
            namespace=spec.namespace,
            metric_name=spec.metric_name,
            dimensions_map=dimensions,
            statistic=spec.statistic,
            period=cdk.Duration.seconds(spec.period_s),
        )

    # ------------------------------------------------------------ wiring for the functions

    @property
    def environment(self) -> dict[str, str]:
        env = {ENV_CAPTURE_BUCKET: self.bucket.bucket_name}
        if self.stream is not None and self.settings.capture_sink == "firehose":  # the logs sink's function only prints
            env[ENV_FIREHOSE_STREAM] = self.stream.ref
        return env

    @property
    def drift_environment(self) -> dict[str, str]:
        """What the drift check gets besides ``environment``: the Athena workgroup and table, when on."""
        if self.workgroup is None:
            return {}
        return {ENV_ATHENA_WORKGROUP: self.workgroup.ref, ENV_CAPTURES_TABLE: f"{self.database.database_input.name}.captures"}  # type: ignore[union-attr]

    def objects_arn(self, root: str) -> str:
        return self.bucket.arn_for_objects(f"{root}/*")

    def grant_capture_write(self, role: iam.IRole) -> None:
        """Inference: PutObject under captures/ and feedback/ only (+ the stream when sink=firehose)."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="WriteCapturesAndFeedback",
                actions=["s3:PutObject"],
                resources=[self.objects_arn(CAPTURE_ROOT), self.objects_arn(FEEDBACK_ROOT), self.objects_arn(REJECTS_ROOT)],
            )
        )
        # /feedback reads the label a row holds (serving/feedback.py); List on that prefix only, so a row
        # without a label reads as 404, not 403
        lookups = [f"{FEEDBACK_ROOT}/model=*/{LABELS_DIR}/*"]
        role.add_to_principal_policy(
            iam.PolicyStatement(sid="ReadRowLabels", actions=["s3:GetObject"], resources=[self.bucket.arn_for_objects(p) for p in lookups])
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ListRowLabels",
                actions=["s3:ListBucket"],
                resources=[self.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": lookups}},
            )
        )
        bucket_id = cdk.Stack.of(self).get_logical_id(self.bucket.node.default_child)  # type: ignore[arg-type]
        for p in lookups:
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{p}]",
                "Object-level prefix grant: /feedback reads the label one row holds.",
            )
        self._ack_prefixes(
            role,
            {
                CAPTURE_ROOT: "Object-level prefix grant: the function writes one capture object per request under captures/.",
                FEEDBACK_ROOT: "Object-level prefix grant: the function writes feedback label objects under feedback/.",
                REJECTS_ROOT: "Object-level prefix grant: the function writes one object per refused request under rejects/.",
            },
        )
        if self.key is not None:
            role.add_to_principal_policy(
                iam.PolicyStatement(sid="EncryptCaptures", actions=["kms:GenerateDataKey"], resources=[self.key.key_arn])
            )
        if self.stream is not None and self.settings.capture_sink == "firehose":  # the logs sink only prints
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="PutCaptureRecords",
                    actions=["firehose:PutRecordBatch", "firehose:PutRecord"],
                    resources=[self.stream.attr_arn],
                )
            )

    def grant_drift_access(self, role: iam.IRole) -> None:
        """Drift check: read captures/ and feedback/, read and write reports/."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ListCaptureFeedbackReports",
                actions=["s3:ListBucket"],
                resources=[self.bucket.bucket_arn],
                conditions={
                    "StringLike": {
                        "s3:prefix": [
                            f"{CAPTURE_ROOT}/*",
                            f"{FEEDBACK_ROOT}/*",
                            f"{REPORTS_ROOT}/*",
                            f"{SAMPLES_ROOT}/*",
                            f"{REJECTS_ROOT}/*",
                        ]
                    }
                },
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadCapturesFeedbackReports",
                actions=["s3:GetObject"],
                resources=[
                    self.objects_arn(CAPTURE_ROOT),
                    self.objects_arn(FEEDBACK_ROOT),
                    self.objects_arn(REPORTS_ROOT),
                    self.objects_arn(SAMPLES_ROOT),
                    self.objects_arn(REJECTS_ROOT),
                ],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="WriteReportsAndHourSamples",
                actions=["s3:PutObject"],
                resources=[self.objects_arn(REPORTS_ROOT), self.objects_arn(SAMPLES_ROOT), self.objects_arn(AUDIT_ROOT)],
            )
        )
        self._ack_prefixes(
            role,
            {
                CAPTURE_ROOT: "Object-level prefix grant: the drift check reads every capture object of its window.",
                FEEDBACK_ROOT: "Object-level prefix grant: the drift check joins the feedback labels of its window.",
                REPORTS_ROOT: "Object-level prefix grant: the drift check writes (and reads back) its reports.",
                SAMPLES_ROOT: "Object-level prefix grant: the drift check keeps one sample per hour so it reads each capture once.",
                AUDIT_ROOT: "Object-level prefix grant: the drift check writes the day's audit sample.",
                REJECTS_ROOT: "Object-level prefix grant: the drift check counts the refused requests of its window.",
            },
        )
        if self.key is not None:
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="DecryptCapturesEncryptReports",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[self.key.key_arn],
                )
            )

    def grant_athena_queries(self, role: iam.IRole) -> None:
        """Drift check with drift_athena=auto|on: run queries in its workgroup only, read the captures table's
        definition, read captures (granted by ``grant_drift_access``) and write and read its results."""
        if self.workgroup is None:
            return
        stack = cdk.Stack.of(self)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="QueryCapturesInWorkgroup",
                actions=["athena:StartQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults", "athena:StopQueryExecution"],
                resources=[stack.format_arn(service="athena", resource="workgroup", resource_name=self.workgroup.ref)],
            )
        )
        db_name = self.database.database_input.name  # type: ignore[union-attr]
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadCapturesTableDefinition",
                actions=["glue:GetDatabase", "glue:GetTable"],
                resources=[
                    stack.format_arn(service="glue", resource="catalog"),
                    stack.format_arn(service="glue", resource="database", resource_name=db_name),
                    stack.format_arn(service="glue", resource="table", resource_name=f"{db_name}/captures"),
                    # the feedback and reject objects it reads are already granted (grant_drift_access: feedback/, rejects/)
                    stack.format_arn(service="glue", resource="table", resource_name=f"{db_name}/{ATHENA_FEEDBACK_TABLE}"),
                    stack.format_arn(service="glue", resource="table", resource_name=f"{db_name}/{ATHENA_REJECTS_TABLE}"),
                ],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="AthenaResultsBucket",
                actions=["s3:GetBucketLocation"],
                resources=[self.bucket.bucket_arn],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ListAthenaResults",
                actions=["s3:ListBucket"],
                resources=[self.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{ATHENA_RESULTS_ROOT}/*"]}},
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="WriteReadAthenaResults",
                actions=["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                resources=[self.objects_arn(ATHENA_RESULTS_ROOT)],
            )
        )
        self._ack_prefixes(
            role,
            {
                ATHENA_RESULTS_ROOT: "Object-level prefix grant: Athena writes the drift check's query results under athena-results/.",
            },
        )

    def _athena_workgroup(self) -> athena.CfnWorkGroup:
        """Where the drift check's queries run: results in the capture bucket (encrypted as it is), a bytes-scanned
        limit per query, the workgroup's settings enforced over the client's."""
        m = self.manifest
        encryption = (
            athena.CfnWorkGroup.EncryptionConfigurationProperty(encryption_option="SSE_KMS", kms_key=self.key.key_arn)
            if self.key is not None
            else athena.CfnWorkGroup.EncryptionConfigurationProperty(encryption_option="SSE_S3")
        )
        return athena.CfnWorkGroup(
            self,
            "DriftQueries",
            name=_glue_name(f"{cdk.Stack.of(self).stack_name}_{m.model_name}_drift").replace("_", "-"),
            description=f"The drift check's queries over the captures of model {m.model_name}",
            recursive_delete_option=True,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                bytes_scanned_cutoff_per_query=self.settings.athena_bytes_scanned_limit_mb * 1024 * 1024,
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{self.bucket.bucket_name}/{ATHENA_RESULTS_ROOT}/",
                    encryption_configuration=encryption,
                ),
            ),
        )

    def _ack_prefixes(self, scope: Construct, reasons: dict[str, str]) -> None:
        bucket_id = cdk.Stack.of(self).get_logical_id(self.bucket.node.default_child)  # type: ignore[arg-type]
        for root, reason in reasons.items():
            acknowledge(scope, f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{root}/*]", reason)

    # ------------------------------------------------------------ Firehose

    def _firehose(self, from_logs: bool = False) -> firehose.CfnDeliveryStream:
        """The capture stream: fed by the function (``capture_sink=firehose``), or by the subscription filter
        on the function's log group (``capture_sink=logs``, ``subscribe_capture_lines``)."""
        m = self.manifest
        log_group = logs.LogGroup(
            self,
            "FirehoseLogs",
            retention=retention(self.settings.log_retention_days),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        log_stream = logs.LogStream(self, "FirehoseLogStream", log_group=log_group, removal_policy=cdk.RemovalPolicy.DESTROY)
        role = iam.Role(
            self,
            "FirehoseRole",
            assumed_by=iam.ServicePrincipal(
                "firehose.amazonaws.com",
                conditions={"StringEquals": {"sts:ExternalId": cdk.Aws.ACCOUNT_ID}},
            ),
            description="Firehose delivery of capture records into captures/ of the capture bucket",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="BucketLevel",
                actions=["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
                resources=[self.bucket.bucket_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="DeliverCaptures",
                actions=["s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject"],
                resources=[self.objects_arn(CAPTURE_ROOT), self.objects_arn(FIREHOSE_ERROR_ROOT)],
            )
        )
        self._ack_prefixes(
            role,
            {
                CAPTURE_ROOT: "Object-level prefix grant: Firehose writes one object per buffer under captures/.",
                FIREHOSE_ERROR_ROOT: "Object-level prefix grant: Firehose writes records it failed to deliver under capture-errors/.",
            },
        )
        role.add_to_policy(iam.PolicyStatement(sid="ErrorLogs", actions=["logs:PutLogEvents"], resources=[log_group.log_group_arn]))
        if self.key is not None:
            role.add_to_policy(
                iam.PolicyStatement(sid="EncryptDeliveries", actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[self.key.key_arn])
            )
        prefix = f"{CAPTURE_ROOT}/model={m.model_name}/version={m.version}/dt=!{{timestamp:yyyy-MM-dd}}/hour=!{{timestamp:HH}}/"
        parquet = from_logs and self.settings.capture_format == "parquet"
        if parquet:
            self._grant_schema_read(role)
        stream = firehose.CfnDeliveryStream(
            self,
            "Stream",
            delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=firehose.CfnDeliveryStream.DeliveryStreamEncryptionConfigurationInputProperty(
                key_type="AWS_OWNED_CMK"
            ),
            extended_s3_destination_configuration=firehose.CfnDeliveryStream.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=self.bucket.bucket_arn,
                role_arn=role.role_arn,
                prefix=EVENT_HOUR_PREFIX if from_logs else prefix,
                error_output_prefix=f"{FIREHOSE_ERROR_ROOT}/!{{firehose:error-output-type}}/dt=!{{timestamp:yyyy-MM-dd}}/",
                compression_format="UNCOMPRESSED" if parquet else "GZIP",  # Parquet compresses its own pages (Snappy)
                buffering_hints=firehose.CfnDeliveryStream.BufferingHintsProperty(interval_in_seconds=300, size_in_m_bs=64),
                processing_configuration=log_line_processing(parquet) if from_logs else None,
                dynamic_partitioning_configuration=(
                    firehose.CfnDeliveryStream.DynamicPartitioningConfigurationProperty(
                        enabled=True, retry_options=firehose.CfnDeliveryStream.RetryOptionsProperty(duration_in_seconds=300)
                    )
                    if from_logs
                    else None
                ),
                data_format_conversion_configuration=self._parquet_conversion(role) if parquet else None,
                encryption_configuration=(
                    firehose.CfnDeliveryStream.EncryptionConfigurationProperty(
                        kms_encryption_config=firehose.CfnDeliveryStream.KMSEncryptionConfigProperty(awskms_key_arn=self.key.key_arn)
                    )
                    if self.key is not None
                    else None
                ),
                cloud_watch_logging_options=firehose.CfnDeliveryStream.CloudWatchLoggingOptionsProperty(
                    enabled=True, log_group_name=log_group.log_group_name, log_stream_name=log_stream.log_stream_name
                ),
            ),
        )
        # the role's policy must exist before Firehose validates the destination
        stream.node.add_dependency(role)
        return stream

    def subscribe_capture_lines(self, log_group: logs.ILogGroup) -> logs.CfnSubscriptionFilter | None:
        """``capture_sink=logs``: the function's capture lines (and no other line) to the capture stream."""
        if self.stream is None or self.settings.capture_sink != "logs":
            return None
        role = iam.Role(
            self,
            "LogsToFirehoseRole",
            assumed_by=iam.ServicePrincipal(
                "logs.amazonaws.com",
                conditions={
                    "StringLike": {
                        "aws:SourceArn": cdk.Arn.format(
                            cdk.ArnComponents(
                                service="logs", resource="log-group", resource_name="*", arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME
                            ),
                            cdk.Stack.of(self),
                        )
                    }
                },
            ),
            description="CloudWatch Logs delivery of the inference function's capture lines to the capture stream",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PutCaptureLines", actions=["firehose:PutRecord", "firehose:PutRecordBatch"], resources=[self.stream.attr_arn]
            )
        )
        subscription = logs.CfnSubscriptionFilter(
            self,
            "CaptureLines",
            filter_name=CAPTURE_LINES_FILTER_NAME,
            log_group_name=log_group.log_group_name,
            filter_pattern=CAPTURE_LINES_FILTER_PATTERN,
            destination_arn=self.stream.attr_arn,
            role_arn=role.role_arn,
        )
        subscription.node.add_dependency(role)
        self.subscription = subscription
        return subscription

    def _grant_schema_read(self, role: iam.Role) -> None:
        """Record format conversion reads the Glue table's schema."""
        stack = cdk.Stack.of(self)
        table_name = self.table.table_input.name  # type: ignore[union-attr]
        db_name = self.database.database_input.name  # type: ignore[union-attr]
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadCaptureSchema",
                actions=["glue:GetTable", "glue:GetTableVersion", "glue:GetTableVersions"],
                resources=[
                    stack.format_arn(service="glue", resource="catalog"),
                    stack.format_arn(service="glue", resource="database", resource_name=db_name),
                    stack.format_arn(service="glue", resource="table", resource_name=f"{db_name}/{table_name}"),
                ],
            )
        )

    def _parquet_conversion(self, role: iam.Role) -> firehose.CfnDeliveryStream.DataFormatConversionConfigurationProperty:
        db_name = self.database.database_input.name  # type: ignore[union-attr]
        return firehose.CfnDeliveryStream.DataFormatConversionConfigurationProperty(
            enabled=True,
            input_format_configuration=firehose.CfnDeliveryStream.InputFormatConfigurationProperty(
                deserializer=firehose.CfnDeliveryStream.DeserializerProperty(
                    open_x_json_ser_de=firehose.CfnDeliveryStream.OpenXJsonSerDeProperty(case_insensitive=True)
                )
            ),
            output_format_configuration=firehose.CfnDeliveryStream.OutputFormatConfigurationProperty(
                serializer=firehose.CfnDeliveryStream.SerializerProperty(
                    parquet_ser_de=firehose.CfnDeliveryStream.ParquetSerDeProperty(compression="SNAPPY")
                )
            ),
            schema_configuration=firehose.CfnDeliveryStream.SchemaConfigurationProperty(
                catalog_id=cdk.Aws.ACCOUNT_ID,
                database_name=db_name,
                table_name=self.table.table_input.name,  # type: ignore[union-attr]
                region=cdk.Aws.REGION,
                role_arn=role.role_arn,
                version_id="LATEST",
            ),
        )

    # ------------------------------------------------------------ Glue / Athena

    def _glue(self) -> tuple[glue.CfnDatabase, glue.CfnTable]:
        m = self.manifest
        db_name = _glue_name(f"{cdk.Stack.of(self).stack_name}_{m.model_name}")
        database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=cdk.Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=db_name, description=f"Captured requests of model {m.model_name} (Athena, partition projection)"
            ),
        )
        columns = [
            glue.CfnTable.ColumnProperty(name="request_id", type="string"),
            glue.CfnTable.ColumnProperty(name="row", type="int"),
            glue.CfnTable.ColumnProperty(name="event_time", type="string", comment="ISO 8601 UTC"),
            glue.CfnTable.ColumnProperty(name="model_name", type="string"),
            glue.CfnTable.ColumnProperty(name="model_version", type="string"),
            glue.CfnTable.ColumnProperty(name="stage", type="string"),
            glue.CfnTable.ColumnProperty(name="inputs", type=inputs_type(m, self.settings)),
            glue.CfnTable.ColumnProperty(name="prediction", type="string", comment="class label, or the regression value as text"),
            glue.CfnTable.ColumnProperty(name="probabilities", type="map<string,double>"),
            # in the table so Parquet conversion (which keeps only the table's columns) keeps them too
            glue.CfnTable.ColumnProperty(name="encoding_fallback", type="boolean", comment="a non-finite output written as text"),
            glue.CfnTable.ColumnProperty(name="variant", type="string", comment="champion or challenger, when one is deployed"),
            glue.CfnTable.ColumnProperty(
                name="explanation",
                type="struct<output:double,base_value:double,values:map<string,double>,class:string,method:string,sampled:boolean>",
                comment="capture_explanations: the row's Shapley values, when it was explained",
            ),
        ]
        parquet = self.settings.capture_sink == "logs" and self.settings.capture_format == "parquet"
        table = self._hour_table(
            "CapturesTable",
            database,
            name="captures",
            description="One row per scored input row; query with WHERE version = '<model version>'",
            columns=columns,
            root=CAPTURE_ROOT,
            layout="model=${model}/version=${version}/dt=${dt}/hour=${hour}",
            parquet=parquet,
        )
        return database, table

    def _feedback_table(self) -> glue.CfnTable:
        """The labels filed by the hour their prediction was made (``feedback_prediction_hour_prefix``), as /feedback
        writes them (gzip JSON Lines of ``FeedbackRecord``), projected by that hour: what the drift check's Athena
        path joins with the captures by request id and row. Labels filed by receipt (unverified, or written before
        that layout) are not in it: the S3 path still reads those."""
        columns = [
            glue.CfnTable.ColumnProperty(name="request_id", type="string"),
            glue.CfnTable.ColumnProperty(name="row", type="int", comment="the row of the request the label is for"),
            glue.CfnTable.ColumnProperty(name="label", type="string", comment="class label, or the regression target as text"),
            glue.CfnTable.ColumnProperty(name="received_time", type="string", comment="ISO 8601 UTC"),
            glue.CfnTable.ColumnProperty(name="model_name", type="string"),
            glue.CfnTable.ColumnProperty(name="replaces", type="string", comment="a correction: the label it replaced"),
            glue.CfnTable.ColumnProperty(name="reason", type="string"),
            glue.CfnTable.ColumnProperty(name="source", type="string"),
            glue.CfnTable.ColumnProperty(name="caller", type="string"),
            glue.CfnTable.ColumnProperty(name="verified", type="boolean"),
            glue.CfnTable.ColumnProperty(name="predicted_at", type="string", comment="ISO 8601 UTC"),
        ]
        return self._hour_table(
            "FeedbackTable",
            self.database,
            name=ATHENA_FEEDBACK_TABLE,
            description="Feedback labels by the UTC hour of their prediction; join captures on request_id and row",
            columns=columns,
            root=FEEDBACK_ROOT,
            layout=f"model=${{model}}/{PREDICTED_DIR}/dt=${{dt}}/hour=${{hour}}",
            partition_keys=[
                glue.CfnTable.ColumnProperty(name="model", type="string"),
                glue.CfnTable.ColumnProperty(name="dt", type="string", comment="the UTC day of the prediction"),
                glue.CfnTable.ColumnProperty(name="hour", type="string", comment="the UTC hour of the prediction"),
            ],
        )

    def _rejects_table(self) -> glue.CfnTable:
        """The refused requests (``reject_key``: gzip JSON Lines of ``RejectRecord``, one object per request), filed
        by model, version and the hour of their event time as the captures are, projected the same way."""
        columns = [
            glue.CfnTable.ColumnProperty(name="request_id", type="string"),
            glue.CfnTable.ColumnProperty(name="event_time", type="string", comment="ISO 8601 UTC"),
            glue.CfnTable.ColumnProperty(name="model_name", type="string"),
            glue.CfnTable.ColumnProperty(name="model_version", type="string"),
            glue.CfnTable.ColumnProperty(name="stage", type="string"),
            glue.CfnTable.ColumnProperty(name="reason", type="string", comment="the request's reason code (its first error's)"),
            glue.CfnTable.ColumnProperty(name="status", type="int"),
            glue.CfnTable.ColumnProperty(name="rows", type="int", comment="rows the request held, when readable"),
            glue.CfnTable.ColumnProperty(name="rows_with_errors", type="int"),
            glue.CfnTable.ColumnProperty(name="errors", type="array<struct<row:int,field:string,reason:string,message:string>>"),
            glue.CfnTable.ColumnProperty(name="errors_total", type="int"),
            glue.CfnTable.ColumnProperty(name="route", type="string"),
            glue.CfnTable.ColumnProperty(name="variant", type="string"),
        ]
        return self._hour_table(
            "RejectsTable",
            self.database,
            name=ATHENA_REJECTS_TABLE,
            description="One row per refused request; query with WHERE version = '<model version>'",
            columns=columns,
            root=REJECTS_ROOT,
            layout="model=${model}/version=${version}/dt=${dt}/hour=${hour}",
        )

    def _hour_table(
        self,
        id: str,
        database: glue.CfnDatabase,
        *,
        name: str,
        description: str,
        columns: list[glue.CfnTable.ColumnProperty],
        root: str,
        layout: str,
        parquet: bool = False,
        partition_keys: list[glue.CfnTable.ColumnProperty] | None = None,
    ) -> glue.CfnTable:
        """A table over ``<root>/<layout>/`` of the capture bucket, partitions projected by hour (``hour_projection``;
        versioned when the layout names a version), gzip JSON Lines or Parquet."""
        bucket = self.bucket.bucket_name
        version = "${version}" in layout
        keys = partition_keys or [
            glue.CfnTable.ColumnProperty(name=k, type="string") for k in ("model", "version", "dt", "hour") if version or k != "version"
        ]
        table = glue.CfnTable(
            self,
            id,
            catalog_id=cdk.Aws.ACCOUNT_ID,
            database_name=database.database_input.name,  # type: ignore[union-attr]
            table_input=glue.CfnTable.TableInputProperty(
                name=name,
                description=description,
                table_type="EXTERNAL_TABLE",
                parameters={
                    **({"classification": "parquet"} if parquet else {"classification": "json", "compressionType": "gzip"}),
                    # any version ever deployed stays queryable; queries name it (WHERE version = '...')
                    **hour_projection(self.manifest.model_name, version=version),
                    "storage.location.template": f"s3://{bucket}/{root}/{layout}/",
                },
                partition_keys=keys,
                storage_descriptor=(parquet_storage if parquet else json_lines_storage)(columns, f"s3://{bucket}/{root}/"),
            ),
        )
        table.node.add_dependency(database)
        return table


def hour_projection(model_name: str, *, version: bool) -> dict[str, str]:
    """Partition projection over ``model=/[version=/]dt=/hour=``: no crawler, no partitions to add, every hour
    since 2024 queryable; a version is injected (queries name it), so any version ever deployed is."""
    return {
        "projection.enabled": "true",
        "projection.model.type": "enum",
        "projection.model.values": model_name,
        **({"projection.version.type": "injected"} if version else {}),
        "projection.dt.type": "date",
        "projection.dt.format": "yyyy-MM-dd",
        "projection.dt.range": "2024-01-01,NOW",
        "projection.dt.interval": "1",
        "projection.dt.interval.unit": "DAYS",
        "projection.hour.type": "integer",
        "projection.hour.range": "0,23",
        "projection.hour.digits": "2",
    }


def json_lines_storage(columns: list[glue.CfnTable.ColumnProperty], location: str) -> glue.CfnTable.StorageDescriptorProperty:
    """A table over gzip JSON Lines objects (the OpenX JSON SerDe; a malformed line is read as nulls, not a failed query)."""
    return glue.CfnTable.StorageDescriptorProperty(
        columns=columns,
        location=location,
        input_format="org.apache.hadoop.mapred.TextInputFormat",
        output_format="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
        compressed=True,
        serde_info=glue.CfnTable.SerdeInfoProperty(
            serialization_library="org.openx.data.jsonserde.JsonSerDe",
            parameters={"ignore.malformed.json": "true"},
        ),
    )


def log_line_processing(parquet: bool) -> firehose.CfnDeliveryStream.ProcessingConfigurationProperty:
    """CloudWatch Logs records to capture rows: gunzip the subscription's batches, one record per log
    message, partition keys from each row; newline-delimited when written as JSON Lines."""
    p = firehose.CfnDeliveryStream

    def processor(kind: str, **params: str) -> firehose.CfnDeliveryStream.ProcessorProperty:
        return p.ProcessorProperty(
            type=kind, parameters=[p.ProcessorParameterProperty(parameter_name=k, parameter_value=v) for k, v in params.items()]
        )

    processors = [
        processor("Decompression", CompressionFormat="GZIP"),
        processor("CloudWatchLogProcessing", DataMessageExtraction="true"),
        processor("MetadataExtraction", MetadataExtractionQuery=PARTITION_KEYS_QUERY, JsonParsingEngine="JQ-1.6"),
    ]
    if not parquet:
        processors.append(processor("AppendDelimiterToRecord"))
    return p.ProcessingConfigurationProperty(enabled=True, processors=processors)


def inputs_type(manifest: BundleManifest, settings: Settings) -> str:
    """Hive type of the ``inputs`` column: a struct of the bundle's features (hashed ones are strings,
    redacted ones absent); a string map when a feature name is not a plain identifier."""
    fields = []
    for f in manifest.features:
        if f.name in settings.redact_features:
            continue
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", f.name):
            return "map<string,string>"
        if f.name in settings.hash_features or f.kind is FeatureKind.CATEGORICAL:
            t = "string"
        elif f.kind is FeatureKind.BOOLEAN:
            t = "boolean"
        else:
            t = "double"
        fields.append(f"{f.name.lower()}:{t}")
    return f"struct<{','.join(fields)}>" if fields else "map<string,string>"


def parquet_storage(columns: list[glue.CfnTable.ColumnProperty], location: str) -> glue.CfnTable.StorageDescriptorProperty:
    """The table over the Parquet files Firehose converts (capture_format=parquet)."""
    return glue.CfnTable.StorageDescriptorProperty(
        columns=columns,
        location=location,
        input_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
        output_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
        serde_info=glue.CfnTable.SerdeInfoProperty(serialization_library="org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"),
    )


def _glue_name(raw: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", raw.lower())[:255]
