# The drop folder: the bucket, its notifications for the prefix, the event queue and its
# dead-letter queue.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

resource "aws_s3_bucket" "drop" {
  bucket = var.bucket_name
}

resource "aws_s3_bucket_public_access_block" "drop" {
  bucket                  = aws_s3_bucket.drop.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "drop" {
  bucket = aws_s3_bucket.drop.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

# SSE-S3: readers need no KMS permission, and presigned URLs (IMGPIPE_MODE=url) keep working.
resource "aws_s3_bucket_server_side_encryption_configuration" "drop" {
  bucket = aws_s3_bucket.drop.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_versioning" "drop" {
  count  = var.bucket_versioning ? 1 : 0
  bucket = aws_s3_bucket.drop.id

  versioning_configuration {
    status = "Enabled"
  }
}

# The analyzer's dead-letter queue: permanent failures (sent by the analyzer) and messages
# that exhausted the redrive policy.
resource "aws_sqs_queue" "dlq" {
  name                      = "${var.name_prefix}-events-dlq"
  message_retention_seconds = local.dlq_retention_seconds
  sqs_managed_sse_enabled   = true
}

# The event queue. SSE-SQS (not SSE-KMS with the AWS managed key, which S3 cannot use).
resource "aws_sqs_queue" "queue" {
  name                       = "${var.name_prefix}-events"
  visibility_timeout_seconds = var.analyzer_visibility_timeout_seconds
  receive_wait_time_seconds  = var.analyzer_wait_time_seconds
  message_retention_seconds  = var.queue_retention_seconds
  sqs_managed_sse_enabled    = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.queue_max_receive_count
  })
}

# Only the event queue may use the DLQ as its dead-letter queue (and as the source of a
# native redrive back to it).
resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.queue.arn]
  })
}

# Only this bucket, in this account, may send to the event queue.
data "aws_iam_policy_document" "queue" {
  statement {
    sid       = "BucketNotifications"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.queue.arn]

    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.drop.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_sqs_queue_policy" "queue" {
  queue_url = aws_sqs_queue.queue.id
  policy    = data.aws_iam_policy_document.queue.json
}

# Browser uploads from the web console: the rule console.CORSRule describes (PUT with the
# headers the presigned URL signs), for the origins the console is served from.
resource "aws_s3_bucket_cors_configuration" "drop" {
  count  = length(var.console_origins) > 0 ? 1 : 0
  bucket = aws_s3_bucket.drop.id

  cors_rule {
    id              = "imgpipe-console"
    allowed_origins = var.console_origins
    allowed_methods = ["PUT"]
    allowed_headers = ["content-type", "x-amz-meta-*"]
    expose_headers  = ["ETag"]
    max_age_seconds = 3000
  }
}

# Every object created or removed under the prefix raises an event on the queue (S3 checks
# the queue policy when the configuration is set, hence the dependency). The thumbnails lie
# outside it: the analyzer's writes of them raise none (no loop).
resource "aws_s3_bucket_notification" "drop" {
  bucket = aws_s3_bucket.drop.id

  queue {
    id            = "${var.name_prefix}-drop-folder"
    queue_arn     = aws_sqs_queue.queue.arn
    events        = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:LifecycleExpiration:*"]
    filter_prefix = var.drop_prefix
  }

  depends_on = [aws_sqs_queue_policy.queue]

  lifecycle {
    precondition {
      condition     = !startswith(var.thumbnail_prefix, var.drop_prefix) && !startswith(var.drop_prefix, var.thumbnail_prefix)
      error_message = "thumbnail_prefix and drop_prefix must not contain each other: thumbnails written under the drop prefix would raise events of their own."
    }
  }
}
