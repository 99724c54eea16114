"""Capture storage: the bucket (captures/, feedback/, reports/), its access-log bucket, the optional
Firehose stream, and the Glue table Athena queries the captures through."""

from __future__ import annotations

import re

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk.alarms import AlarmSpec, Source
from modelserve.records import AUDIT_ROOT, CAPTURE_ROOT, FEEDBACK_ROOT, LABELS_DIR, REJECTS_ROOT, REPORTS_ROOT, SAMPLES_ROOT
from modelserve.schema import BundleManifest, FeatureKind
from modelserve.settings import ENV_CAPTURE_BUCKET, ENV_FIREHOSE_STREAM, Settings, SettingsError

from .common import retention
from .nag import acknowledge

# Environment variables the functions read (names independent of any setting)
FIREHOSE_ERROR_ROOT = "capture-errors"
S3_MIN_IA_DAYS = 30  # S3 refuses a STANDARD_IA transition earlier than 30 days


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
                f"S3 moves objects to Infrequent Access after {S3_MIN_IA_DAYS} days at the earliest (allowed: 0 for never, or >= {S3_MIN_IA_DAYS})"
            )

        self.key: kms.Key | None = None
        if settings.bucket_encryption == "kms":
            self.key = kms.Key(
                self, "Key",
                description=f"Capture bucket of model {manifest.model_name}",
                enable_key_rotation=True,
                removal_policy=cdk.RemovalPolicy.RETAIN,
            )

        # Server access logs: SSE-S3 is the only encryption S3 log delivery supports.
        self.log_bucket = s3.Bucket(
            self, "AccessLogs",
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
            self.log_bucket, "AwsSolutions-S1",
            "This is the server-access-log bucket of the capture bucket; logging it into itself would loop.",
        )

        expiry = cdk.Duration.days(settings.capture_expiry_days)
        transitions = (
            [s3.Transition(storage_class=s3.StorageClass.INFREQUENT_ACCESS, transition_after=cdk.Duration.days(settings.capture_transition_days))]
            if settings.capture_transition_days
            else None
        )
        noncurrent = cdk.Duration.days(settings.capture_noncurrent_days)
        self.bucket = s3.Bucket(
            self, "Bucket",
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
                s3.LifecycleRule(id="captures", prefix=f"{CAPTURE_ROOT}/", expiration=expiry, transitions=transitions,
                                 noncurrent_version_expiration=noncurrent),
                s3.LifecycleRule(id="feedback", prefix=f"{FEEDBACK_ROOT}/", expiration=expiry, transitions=transitions,
                                 noncurrent_version_expiration=noncurrent),
                s3.LifecycleRule(id="rejects", prefix=f"{REJECTS_ROOT}/", expiration=expiry, transitions=transitions,
                                 noncurrent_version_expiration=noncurrent),
                # the audit sample holds captured rows: it expires with them, and the drift check rewrites it
                # every run, so its noncurrent versions must expire too
                s3.LifecycleRule(id="audit", prefix=f"{AUDIT_ROOT}/", expiration=expiry, noncurrent_version_expiration=noncurrent),
                s3.LifecycleRule(id="capture-errors", prefix=f"{FIREHOSE_ERROR_ROOT}/", expiration=expiry,
                                 noncurrent_version_expiration=noncurrent),
                s3.LifecycleRule(id="reports", prefix=f"{REPORTS_ROOT}/", expiration=cdk.Duration.days(settings.report_expiry_days),
                                 noncurrent_version_expiration=noncurrent),
                # hour samples only serve windows that still cover their hour; rewritten ones are worth nothing
                s3.LifecycleRule(
                    id="hour-samples", prefix=f"{SAMPLES_ROOT}/",
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
        if settings.capture_sink == "firehose":
            self.stream = self._firehose()
        self.database, self.table = self._glue()

    # ------------------------------------------------------------ metrics the alarms read

    @property
    def alarm_sources(self) -> tuple[Source, ...]:
        return ("firehose",) if self.stream is not None else ()

    def alarm_metric(self, spec: AlarmSpec) -> cloudwatch.IMetric:
        """The metric an alarm on the capture stream (``AWS/Firehose``) reads."""
        if self.stream is None:
            raise ValueError(f"alarm {spec.id} watches the Firehose stream, but the stack has none")
        return cloudwatch.Metric(
            namespace=spec.namespace,
            metric_name=spec.metric_name,
            dimensions_map={"DeliveryStreamName": self.stream.ref},
            statistic=spec.statistic,
            period=cdk.Duration.seconds(spec.period_s),
        )

    # ------------------------------------------------------------ wiring for the functions

    @property
    def environment(self) -> dict[str, str]:
        env = {ENV_CAPTURE_BUCKET: self.bucket.bucket_name}
        if self.stream is not None:
            env[ENV_FIREHOSE_STREAM] = self.stream.ref
        return env

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
                sid="ListRowLabels", actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": lookups}},
            )
        )
        bucket_id = cdk.Stack.of(self).get_logical_id(self.bucket.node.default_child)  # type: ignore[arg-type]
        for p in lookups:
            acknowledge(role, f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{p}]", "Object-level prefix grant: /feedback reads the label one row holds.")
        self._ack_prefixes(role, {
            CAPTURE_ROOT: "Object-level prefix grant: the function writes one capture object per request under captures/.",
            FEEDBACK_ROOT: "Object-level prefix grant: the function writes feedback label objects under feedback/.",
            REJECTS_ROOT: "Object-level prefix grant: the function writes one object per refused request under rejects/.",
        })
        if self.key is not None:
            role.add_to_principal_policy(
                iam.PolicyStatement(sid="EncryptCaptures", actions=["kms:GenerateDataKey"], resources=[self.key.key_arn])
            )
        if self.stream is not None:
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
                            f"{CAPTURE_ROOT}/*", f"{FEEDBACK_ROOT}/*", f"{REPORTS_ROOT}/*", f"{SAMPLES_ROOT}/*", f"{REJECTS_ROOT}/*",
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
                    self.objects_arn(CAPTURE_ROOT), self.objects_arn(FEEDBACK_ROOT),
                    self.objects_arn(REPORTS_ROOT), self.objects_arn(SAMPLES_ROOT), self.objects_arn(REJECTS_ROOT),
                ],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="WriteReportsAndHourSamples", actions=["s3:PutObject"],
                resources=[self.objects_arn(REPORTS_ROOT), self.objects_arn(SAMPLES_ROOT), self.objects_arn(AUDIT_ROOT)],
            )
        )
        self._ack_prefixes(role, {
            CAPTURE_ROOT: "Object-level prefix grant: the drift check reads every capture object of its window.",
            FEEDBACK_ROOT: "Object-level prefix grant: the drift check joins the feedback labels of its window.",
            REPORTS_ROOT: "Object-level prefix grant: the drift check writes (and reads back) its reports.",
            SAMPLES_ROOT: "Object-level prefix grant: the drift check keeps one sample per hour so it reads each capture once.",
            AUDIT_ROOT: "Object-level prefix grant: the drift check writes the day's audit sample.",
            REJECTS_ROOT: "Object-level prefix grant: the drift check counts the refused requests of its window.",
        })
        if self.key is not None:
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="DecryptCapturesEncryptReports",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[self.key.key_arn],
                )
            )

    def _ack_prefixes(self, scope: Construct, reasons: dict[str, str]) -> None:
        bucket_id = cdk.Stack.of(self).get_logical_id(self.bucket.node.default_child)  # type: ignore[arg-type]
        for root, reason in reasons.items():
            acknowledge(scope, f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{root}/*]", reason)

    # ------------------------------------------------------------ Firehose

    def _firehose(self) -> firehose.CfnDeliveryStream:
        m = self.manifest
        log_group = logs.LogGroup(
            self, "FirehoseLogs",
            retention=retention(self.settings.log_retention_days),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        log_stream = logs.LogStream(self, "FirehoseLogStream", log_group=log_group, removal_policy=cdk.RemovalPolicy.DESTROY)
        role = iam.Role(
            self, "FirehoseRole",
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
        self._ack_prefixes(role, {
            CAPTURE_ROOT: "Object-level prefix grant: Firehose writes one object per buffer under captures/.",
            FIREHOSE_ERROR_ROOT: "Object-level prefix grant: Firehose writes records it failed to deliver under capture-errors/.",
        })
        role.add_to_policy(
            iam.PolicyStatement(sid="ErrorLogs", actions=["logs:PutLogEvents"], resources=[log_group.log_group_arn])
        )
        if self.key is not None:
            role.add_to_policy(
                iam.PolicyStatement(sid="EncryptDeliveries", actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[self.key.key_arn])
            )
        prefix = f"{CAPTURE_ROOT}/model={m.model_name}/version={m.version}/dt=!{{timestamp:yyyy-MM-dd}}/hour=!{{timestamp:HH}}/"
        stream = firehose.CfnDeliveryStream(
            self, "Stream",
            delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=firehose.CfnDeliveryStream.DeliveryStreamEncryptionConfigurationInputProperty(
                key_type="AWS_OWNED_CMK"
            ),
            extended_s3_destination_configuration=firehose.CfnDeliveryStream.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=self.bucket.bucket_arn,
                role_arn=role.role_arn,
                prefix=prefix,
                error_output_prefix=f"{FIREHOSE_ERROR_ROOT}/!{{firehose:error-output-type}}/dt=!{{timestamp:yyyy-MM-dd}}/",
                compression_format="GZIP",
                buffering_hints=firehose.CfnDeliveryStream.BufferingHintsProperty(interval_in_seconds=300, size_in_m_bs=64),
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

    # ------------------------------------------------------------ Glue / Athena

    def _glue(self) -> tuple[glue.CfnDatabase, glue.CfnTable]:
        m = self.manifest
        db_name = _glue_name(f"{cdk.Stack.of(self).stack_name}_{m.model_name}")
        database = glue.CfnDatabase(
            self, "Database",
            catalog_id=cdk.Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=db_name, description=f"Captured requests of model {m.model_name} (Athena, partition projection)"
            ),
        )
        bucket = self.bucket.bucket_name
        location = f"s3://{bucket}/{CAPTURE_ROOT}/"
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
        ]
        table = glue.CfnTable(
            self, "CapturesTable",
            catalog_id=cdk.Aws.ACCOUNT_ID,
            database_name=db_name,
            table_input=glue.CfnTable.TableInputProperty(
                name="captures",
                description="One row per scored input row; query with WHERE version = '<model version>'",
                table_type="EXTERNAL_TABLE",
                parameters={
                    "classification": "json",
                    "compressionType": "gzip",
                    "projection.enabled": "true",
                    "projection.model.type": "enum",
                    "projection.model.values": m.model_name,
                    # any version ever deployed stays queryable; queries name it (WHERE version = '...')
                    "projection.version.type": "injected",
                    "projection.dt.type": "date",
                    "projection.dt.format": "yyyy-MM-dd",
                    "projection.dt.range": "2024-01-01,NOW",
                    "projection.dt.interval": "1",
                    "projection.dt.interval.unit": "DAYS",
                    "projection.hour.type": "integer",
                    "projection.hour.range": "0,23",
                    "projection.hour.digits": "2",
                    "storage.location.template": f"s3://{bucket}/{CAPTURE_ROOT}/model=${{model}}/version=${{version}}/dt=${{dt}}/hour=${{hour}}/",
                },
                partition_keys=[
                    glue.CfnTable.ColumnProperty(name="model", type="string"),
                    glue.CfnTable.ColumnProperty(name="version", type="string"),
                    glue.CfnTable.ColumnProperty(name="dt", type="string"),
                    glue.CfnTable.ColumnProperty(name="hour", type="string"),
                ],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    columns=columns,
                    location=location,
                    input_format="org.apache.hadoop.mapred.TextInputFormat",
                    output_format="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                    compressed=True,
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library="org.openx.data.jsonserde.JsonSerDe",
                        parameters={"ignore.malformed.json": "true"},
                    ),
                ),
            ),
        )
        table.node.add_dependency(database)
        return database, table


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


def _glue_name(raw: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", raw.lower())[:255]
