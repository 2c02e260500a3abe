# Each *_settings output is one binary's environment: every key is the name of one of its
# settings (README.md, --help), every value what this deployment gives it. `go run
# ./terraform/envfile` (in deploy/; `make tf-env`) turns `terraform output -json` into env
# files, or into the kustomize component the Kubernetes overlays read.

locals {
  # Outside EKS the AWS SDK finds its web identity through these (the IRSA webhook sets them
  # on EKS).
  aws_web_identity = {
    for b in local.binaries : b => var.runtime != "eks" ? {
      AWS_ROLE_ARN                = aws_iam_role.binary[b].arn
      AWS_WEB_IDENTITY_TOKEN_FILE = var.aws_web_identity_token_path
    } : {}
  }
}

locals {
  vision_quota = {
    S1 = { rate = "20", burst = "20" }
    F0 = { rate = "0.33", burst = "1" }
  }
}

output "analyzer_settings" {
  description = "The analyzer's environment."
  value = merge(
    {
      AWS_REGION                 = var.aws_region
      IMGPIPE_QUEUE_URL          = aws_sqs_queue.queue.url
      IMGPIPE_DLQ_URL            = aws_sqs_queue.dlq.url
      IMGPIPE_VISIBILITY_TIMEOUT = "${var.analyzer_visibility_timeout_seconds}s"
      IMGPIPE_WAIT_TIME          = "${var.analyzer_wait_time_seconds}s"
      IMGPIPE_THUMBNAIL_PREFIX   = var.thumbnail_prefix
      GOOGLE_CLOUD_PROJECT       = var.gcp_project_id
      IMGPIPE_TOPIC              = google_pubsub_topic.analyses.name
      AZURE_VISION_ENDPOINT      = azurerm_cognitive_account.vision.endpoint
      # The Vision account's quota, the ceiling of each replica's adaptive rate: S1 about 20
      # calls per second, F0 20 calls per minute.
      IMGPIPE_VISION_RATE  = local.vision_quota[var.vision_sku].rate
      IMGPIPE_VISION_BURST = local.vision_quota[var.vision_sku].burst
    },
    var.vision_key_auth ? { AZURE_VISION_KEY_FILE = var.vision_key_path } : {
      AZURE_TENANT_ID                             = data.azurerm_client_config.current.tenant_id
      AZURE_CLIENT_ID                             = azurerm_user_assigned_identity.analyzer.client_id
      AZURE_FEDERATED_TOKEN_FILE                  = var.azure_federated_token_path
    },
    var.runtime != "gke" ? { GOOGLE_APPLICATION_CREDENTIALS = var.google_credentials_path } : {},
    local.aws_web_identity["analyzer"],
  )
}

output "indexer_settings" {
  description = "The indexer's environment."
  value = merge(
    {
      GOOGLE_CLOUD_PROJECT       = var.gcp_project_id
      IMGPIPE_SUBSCRIPTION       = google_pubsub_subscription.indexer.name
      IMGPIPE_FIRESTORE_DATABASE = google_firestore_database.index.name
      IMGPIPE_COLLECTION         = var.firestore_collection
    },
    # Outside GKE its Google credentials come from its AWS role (pkg/gcpauth signs with the
    # AWS region): on AKS through web identity, on EKS through IRSA.
    var.runtime != "gke" ? { GOOGLE_APPLICATION_CREDENTIALS = var.google_credentials_path, AWS_REGION = var.aws_region } : {},
    var.runtime == "aks" ? local.aws_web_identity["indexer"] : {},
  )
}

output "console_settings" {
  description = "The web console's environment."
  value = merge(
    {
      AWS_REGION                       = var.aws_region
      IMGPIPE_BUCKET                   = aws_s3_bucket.drop.bucket
      IMGPIPE_PREFIX                   = var.drop_prefix
      IMGPIPE_QUEUE_URL                = aws_sqs_queue.queue.url
      IMGPIPE_DLQ_URL                  = aws_sqs_queue.dlq.url
      GOOGLE_CLOUD_PROJECT             = var.gcp_project_id
      IMGPIPE_FIRESTORE_DATABASE       = google_firestore_database.index.name
      IMGPIPE_COLLECTION               = var.firestore_collection
      IMGPIPE_DEAD_LETTER_SUBSCRIPTION = google_pubsub_subscription.dead_letter.name
    },
    var.runtime != "gke" ? { GOOGLE_APPLICATION_CREDENTIALS = var.google_credentials_path } : {},
    local.aws_web_identity["console"],
  )
}

output "uploader_settings" {
  description = "The uploader's environment."
  value = merge(local.aws_web_identity["uploader"], {
    AWS_REGION                 = var.aws_region
    IMGPIPE_BUCKET             = aws_s3_bucket.drop.bucket
    IMGPIPE_PREFIX             = var.drop_prefix
    IMGPIPE_DLQ_URL            = aws_sqs_queue.dlq.url
    GOOGLE_CLOUD_PROJECT       = var.gcp_project_id
    IMGPIPE_FIRESTORE_DATABASE = google_firestore_database.index.name
    IMGPIPE_COLLECTION         = var.firestore_collection
  })
}

output "dlq_replay_settings" {
  description = "dlq-replay's environment."
  value = merge(local.aws_web_identity["dlq-replay"], {
    AWS_REGION                       = var.aws_region
    IMGPIPE_DLQ_URL                  = aws_sqs_queue.dlq.url
    GOOGLE_CLOUD_PROJECT             = var.gcp_project_id
    IMGPIPE_DEAD_LETTER_SUBSCRIPTION = google_pubsub_subscription.dead_letter.name
    IMGPIPE_TOPIC                    = google_pubsub_topic.analyses.name
  })
}

output "google_credentials" {
  description = "Outside GKE, the external_account configuration (JSON, no secret: the AWS side is the pod's own role) each federated binary mounts at google_credentials_path; empty on GKE."
  value       = local.google_credentials
}

output "kubernetes_service_account_annotations" {
  description = "Annotations of each binary's Kubernetes service account: its AWS role on EKS (IRSA), its Google service account on GKE (GKE workload identity) and the analyzer's Azure client ID (what the AKS workload identity webhook reads; the manifests mount the token themselves)."
  value = {
    for b, ksa in local.kubernetes_service_accounts : b => merge(
      var.runtime == "eks" ? { "eks.amazonaws.com/role-arn" = aws_iam_role.binary[b].arn } : {},
      var.runtime == "gke" ? { "iam.gke.io/gcp-service-account" = google_service_account.binary[b].email } : {},
      b == "analyzer" && !var.vision_key_auth ? { "azure.workload.identity/client-id" = azurerm_user_assigned_identity.analyzer.client_id } : {},
    )
  }
}

output "runtime" {
  description = "Where the binaries run (var.runtime): the deploy/k8s overlay that takes these outputs."
  value       = var.runtime
}

output "keda_role_arn" {
  description = "The role KEDA's operator reads the event queue's depth with (the analyzer's TriggerAuthentication, podIdentity.roleArn)."
  value       = aws_iam_role.keda.arn
}

output "kubernetes_service_accounts" {
  description = "Namespace and name of each binary's Kubernetes service account, as the identities trust them."
  value = {
    for b, ksa in local.kubernetes_service_accounts : b => { namespace = var.kubernetes_namespace, name = ksa }
  }
}

output "vision_key" {
  description = "The Vision account's key when vision_key_auth is set (for a Kubernetes Secret mounted as AZURE_VISION_KEY_FILE); null otherwise."
  value       = var.vision_key_auth ? azurerm_cognitive_account.vision.primary_access_key : null
  sensitive   = true
}
