# One IAM role per binary, assumed with the binary's Kubernetes service account token
# (IRSA on EKS; the same AssumeRoleWithWebIdentity from GKE and AKS with the cluster's own
# issuer), and one for KEDA's operator, which reads the event queue's depth.
# Each role's policy allows exactly the calls the binary makes: deploy/terraform's tests
# derive them from the code and compare.

resource "aws_iam_openid_connect_provider" "kubernetes" {
  count          = var.create_aws_oidc_provider ? 1 : 0
  url            = var.kubernetes_oidc_issuer_url
  client_id_list = ["sts.amazonaws.com"]
}

locals {
  oidc_provider_arn = var.create_aws_oidc_provider ? aws_iam_openid_connect_provider.kubernetes[0].arn : "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:oidc-provider/${local.issuer_host}"
}

data "aws_iam_policy_document" "trust" {
  for_each = local.kubernetes_subjects

  statement {
    sid     = "KubernetesServiceAccount"
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [local.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.issuer_host}:sub"
      values   = [each.value]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.issuer_host}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }

  # Operators may run the operator tools with these roles from outside the cluster.
  dynamic "statement" {
    for_each = contains(["uploader", "dlq-replay"], each.key) && length(var.aws_operator_role_arns) > 0 ? [each.key] : []

    content {
      sid     = "Operators"
      effect  = "Allow"
      actions = ["sts:AssumeRole"]

      principals {
        type        = "AWS"
        identifiers = var.aws_operator_role_arns
      }
    }
  }
}

resource "aws_iam_role" "binary" {
  for_each             = local.kubernetes_service_accounts
  name                 = "${var.name_prefix}-${each.key}"
  description          = "imgpipe ${each.key} (Kubernetes service account ${var.kubernetes_namespace}/${each.value})"
  assume_role_policy   = data.aws_iam_policy_document.trust[each.key].json
  max_session_duration = 3600
}

# Each binary's inline policy: its statements (sid, actions, resources), one entry per binary
# that calls AWS.
locals {
  # Without ListBucket, S3 answers 403 instead of 404 for an object deleted in the meantime;
  # the analyzer also lists a key's thumbnails (one per version) to remove the older ones.
  aws_missing_objects_are_not_found = {
    sid       = "MissingObjectsAreNotFound"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.drop.arn]
  }

  aws_statements = {
    # analyzer: reads new objects, writes and removes their thumbnails (by key: delete markers
    # in a versioned bucket, never a version), consumes the event queue, dead-letters
    # permanent failures.
    analyzer = [
      {
        sid       = "ReadDropFolder"
        actions   = ["s3:GetObject", "s3:GetObjectVersion"]
        resources = ["${aws_s3_bucket.drop.arn}/${var.drop_prefix}*"]
      },
      {
        sid       = "WriteThumbnails"
        actions   = ["s3:DeleteObject", "s3:PutObject"]
        resources = ["${aws_s3_bucket.drop.arn}/${var.thumbnail_prefix}*"]
      },
      local.aws_missing_objects_are_not_found,
      {
        sid       = "ConsumeEvents"
        actions   = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
        resources = [aws_sqs_queue.queue.arn]
      },
      {
        sid       = "DeadLetter"
        actions   = ["sqs:GetQueueAttributes", "sqs:SendMessage"] # its depth is a metric
        resources = [aws_sqs_queue.dlq.arn]
      },
    ]

    # console: signs browser uploads into the drop folder and image and thumbnail URLs
    # (presigned: they act with its rights, so it needs them), looks objects up, shows the
    # queue's depth and scans the dead-letter queue without consuming it. Its --bucket-cors
    # (GetBucketCors, PutBucketCors) is for local stacks: here the bucket's CORS rule is
    # aws_s3_bucket_cors_configuration.drop.
    console = [
      {
        sid       = "UploadAndShow"
        actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"]
        resources = ["${aws_s3_bucket.drop.arn}/${var.drop_prefix}*"]
      },
      {
        sid       = "ShowThumbnails"
        actions   = ["s3:GetObject"]
        resources = ["${aws_s3_bucket.drop.arn}/${var.thumbnail_prefix}*"]
      },
      local.aws_missing_objects_are_not_found,
      {
        sid       = "QueueDepth"
        actions   = ["sqs:GetQueueAttributes"]
        resources = [aws_sqs_queue.queue.arn]
      },
      {
        sid       = "ScanDeadLetters"
        actions   = ["sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
        resources = [aws_sqs_queue.dlq.arn]
      },
    ]

    # indexer: no AWS call at all. Its role is only the identity Google Cloud's workload
    # identity federation trusts outside GKE.

    # uploader: writes into the drop folder (multipart included), checks for existing content,
    # deletes the object (the version) it wrote when the file changed after S3 accepted it,
    # and peeks at the dead-letter queue for `status` and `wait`.
    uploader = [
      {
        sid       = "WriteDropFolder"
        actions   = ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"]
        resources = ["${aws_s3_bucket.drop.arn}/${var.drop_prefix}*"]
      },
      local.aws_missing_objects_are_not_found,
      {
        sid       = "PeekDeadLetters"
        actions   = ["sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
        resources = [aws_sqs_queue.dlq.arn]
      },
    ]

    # dlq-replay: reads, replays, exports and purges the dead-letter queue, sends back to the
    # event queue, and runs SQS's native redrive.
    "dlq-replay" = [
      {
        sid = "DeadLetterQueue"
        actions = [
          "sqs:CancelMessageMoveTask", "sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
          "sqs:ListDeadLetterSourceQueues", "sqs:ListMessageMoveTasks", "sqs:ReceiveMessage", "sqs:StartMessageMoveTask",
        ]
        resources = [aws_sqs_queue.dlq.arn]
      },
      {
        sid       = "ReplayTarget"
        actions   = ["sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"]
        resources = [aws_sqs_queue.queue.arn]
      },
    ]
  }
}

data "aws_iam_policy_document" "binary" {
  for_each = local.aws_statements

  dynamic "statement" {
    for_each = each.value

    content {
      sid       = statement.value.sid
      actions   = statement.value.actions
      resources = statement.value.resources
    }
  }
}

resource "aws_iam_role_policy" "binary" {
  for_each = local.aws_statements
  name     = each.key
  role     = aws_iam_role.binary[each.key].id
  policy   = data.aws_iam_policy_document.binary[each.key].json
}

# KEDA: the aws-sqs-queue scaler of the analyzer's ScaledObject reads the queue's depth with
# this role (its TriggerAuthentication names it), exchanging the token of KEDA's operator.
resource "aws_iam_role" "keda" {
  name                 = "${var.name_prefix}-keda"
  description          = "KEDA's operator reading imgpipe's event queue depth (Kubernetes service account ${var.keda_service_account.namespace}/${var.keda_service_account.name})"
  assume_role_policy   = data.aws_iam_policy_document.trust["keda"].json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "keda" {
  statement {
    sid       = "QueueDepth"
    actions   = ["sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.queue.arn]
  }
}

resource "aws_iam_role_policy" "keda" {
  name   = "keda"
  role   = aws_iam_role.keda.id
  policy = data.aws_iam_policy_document.keda.json
}
