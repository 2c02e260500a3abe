# Every variable has a type and a description (checked by deploy/terraform's tests).

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name (queues, roles, service accounts, topics)."
  default     = "imgpipe"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3 to 16 lower-case letters, digits or dashes, starting with a letter."
  }
}

variable "runtime" {
  type        = string
  description = "Where the binaries run: eks (AWS identities via IRSA; Google Cloud through workload identity federation from those AWS roles), gke (Google identities via GKE workload identity; AWS through AssumeRoleWithWebIdentity with the cluster's service account tokens) or aks (AWS as on GKE, Google Cloud as on EKS, through the AWS roles). Azure is reached the same way everywhere: Entra ID workload identity federation of the analyzer's service account token."
  default     = "eks"

  validation {
    condition     = contains(["eks", "gke", "aks"], var.runtime)
    error_message = "runtime must be eks, gke or aks."
  }
}

variable "kubernetes_oidc_issuer_url" {
  type        = string
  description = "OIDC issuer of the cluster's service account tokens, exactly as their iss claim has it (EKS: the cluster's OpenID Connect provider URL; GKE: https://container.googleapis.com/v1/projects/PROJECT/locations/LOCATION/clusters/CLUSTER; AKS: az aks show --query oidcIssuerProfile.issuerUrl, which ends with a slash). AWS and Azure trust tokens from it."

  validation {
    condition     = can(regex("^https://[^/?#]+(/[^?#]*)?$", var.kubernetes_oidc_issuer_url))
    error_message = "kubernetes_oidc_issuer_url must be an https URL without a query or fragment."
  }
}

variable "create_aws_oidc_provider" {
  type        = bool
  description = "Create the AWS IAM OpenID Connect provider for kubernetes_oidc_issuer_url (false when the cluster already has one, as most EKS clusters with IRSA do)."
  default     = true
}

variable "kubernetes_namespace" {
  type        = string
  description = "Kubernetes namespace the binaries run in."
  default     = "imgpipe"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.kubernetes_namespace))
    error_message = "kubernetes_namespace must be a DNS label."
  }
}

variable "kubernetes_service_accounts" {
  type = object({
    analyzer   = optional(string, "imgpipe-analyzer")
    indexer    = optional(string, "imgpipe-indexer")
    uploader   = optional(string, "imgpipe-uploader")
    dlq_replay = optional(string, "imgpipe-dlq-replay")
    console    = optional(string, "imgpipe-console")
  })
  description = "Kubernetes service account of each binary (the defaults are deploy/k8s's); the cloud identities trust exactly these."
  default     = {}
}

variable "keda_service_account" {
  type = object({
    namespace = optional(string, "keda")
    name      = optional(string, "keda-operator")
  })
  description = "Kubernetes service account of KEDA's operator (the Helm chart's defaults): the only one trusted with the role that reads the event queue's depth for the analyzer's ScaledObject."
  default     = {}
}

variable "aws_operator_role_arns" {
  type        = list(string)
  description = "IAM principals (role ARNs) of operators allowed to assume the uploader's and dlq-replay's roles from outside the cluster."
  default     = []
}

# ---- AWS ----

variable "aws_region" {
  type        = string
  description = "AWS region of the bucket and the queues (the binaries' AWS_REGION)."

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must be an AWS region name such as eu-west-1."
  }
}

variable "bucket_name" {
  type        = string
  description = "Name of the S3 bucket of the drop folder (globally unique)."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name)) && !can(regex("\\.\\.", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name: 3 to 63 lower-case letters, digits, dots and dashes."
  }
}

variable "drop_prefix" {
  type        = string
  description = "Key prefix of the drop folder: only objects under it raise events (the binaries' IMGPIPE_PREFIX)."
  default     = "upload/"

  validation {
    condition     = endswith(var.drop_prefix, "/") && !startswith(var.drop_prefix, "/")
    error_message = "drop_prefix must end with / and not start with /."
  }
}

variable "thumbnail_prefix" {
  type        = string
  description = "Key prefix of the thumbnails the analyzer writes beside the images (its IMGPIPE_THUMBNAIL_PREFIX): outside drop_prefix, so that writing one raises no event."
  default     = "thumbnail/"

  validation {
    condition     = endswith(var.thumbnail_prefix, "/") && !startswith(var.thumbnail_prefix, "/")
    error_message = "thumbnail_prefix must end with / and not start with /."
  }
}

variable "console_origins" {
  type        = list(string)
  description = "Origins (scheme://host[:port]) the web console's page is served from: the bucket gets the CORS rule browser uploads from them need (console.CORSRule). Empty: no CORS rule, no browser uploads."
  default     = []

  validation {
    condition     = alltrue([for o in var.console_origins : can(regex("^https?://[^/?#]+$", o))])
    error_message = "console_origins must be origins such as https://console.example.com, without a path or a trailing slash."
  }
}

variable "bucket_versioning" {
  type        = bool
  description = "Keep object versions in the bucket (deletes then raise ObjectRemoved:DeleteMarkerCreated, which the pipeline handles)."
  default     = false
}

variable "queue_max_receive_count" {
  type        = number
  description = "Receives of one message before SQS moves it to the dead-letter queue (the redrive policy)."
  default     = 5

  validation {
    condition     = var.queue_max_receive_count >= 1 && var.queue_max_receive_count <= 1000 && floor(var.queue_max_receive_count) == var.queue_max_receive_count
    error_message = "queue_max_receive_count must be a whole number from 1 to 1000."
  }
}

variable "queue_retention_seconds" {
  type        = number
  description = "How long the event queue keeps a message; shorter than the dead-letter queue's 14 days, since a dead-lettered message keeps its first enqueue time."
  default     = 345600

  validation {
    condition     = var.queue_retention_seconds >= 60 && var.queue_retention_seconds < 1209600
    error_message = "queue_retention_seconds must be at least 60 and below 1209600 (the dead-letter queue's 14 days)."
  }
}

variable "analyzer_visibility_timeout_seconds" {
  type        = number
  description = "Visibility timeout of the event queue, and the analyzer's IMGPIPE_VISIBILITY_TIMEOUT (the analyzer's heartbeat renews it while a message is in work)."
  default     = 30

  validation {
    condition     = var.analyzer_visibility_timeout_seconds >= 10 && var.analyzer_visibility_timeout_seconds <= 43200 && floor(var.analyzer_visibility_timeout_seconds) == var.analyzer_visibility_timeout_seconds
    error_message = "analyzer_visibility_timeout_seconds must be a whole number from 10 to 43200."
  }
}

variable "analyzer_wait_time_seconds" {
  type        = number
  description = "Long-poll wait of the event queue, and the analyzer's IMGPIPE_WAIT_TIME."
  default     = 20

  validation {
    condition     = var.analyzer_wait_time_seconds >= 0 && var.analyzer_wait_time_seconds <= 20 && floor(var.analyzer_wait_time_seconds) == var.analyzer_wait_time_seconds
    error_message = "analyzer_wait_time_seconds must be a whole number from 0 to 20."
  }
}

# ---- Google Cloud ----

variable "gcp_project_id" {
  type        = string
  description = "Google Cloud project of Pub/Sub, Firestore and the service accounts (the binaries' GOOGLE_CLOUD_PROJECT)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.gcp_project_id))
    error_message = "gcp_project_id must be a Google Cloud project ID."
  }
}

variable "pubsub_max_delivery_attempts" {
  type        = number
  description = "Deliveries of one message before Pub/Sub forwards it to the dead-letter topic."
  default     = 5

  validation {
    condition     = var.pubsub_max_delivery_attempts >= 5 && var.pubsub_max_delivery_attempts <= 100
    error_message = "pubsub_max_delivery_attempts must be from 5 to 100 (Pub/Sub's limits)."
  }
}

variable "pubsub_ack_deadline_seconds" {
  type        = number
  description = "Acknowledgement deadline of the indexer's subscription (the client extends it while a record is in work)."
  default     = 60

  validation {
    condition     = var.pubsub_ack_deadline_seconds >= 10 && var.pubsub_ack_deadline_seconds <= 600
    error_message = "pubsub_ack_deadline_seconds must be from 10 to 600."
  }
}

variable "pubsub_retry_backoff" {
  type = object({
    minimum = optional(string, "10s")
    maximum = optional(string, "600s")
  })
  description = "Retry policy of the indexer's subscription: exponential backoff between redeliveries of a nacked record."
  default     = {}

  validation {
    condition     = can(regex("^[0-9]+s$", var.pubsub_retry_backoff.minimum)) && can(regex("^[0-9]+s$", var.pubsub_retry_backoff.maximum))
    error_message = "pubsub_retry_backoff.minimum and .maximum must be durations in seconds such as 10s."
  }
}

variable "firestore_database" {
  type        = string
  description = "Firestore database ID (the binaries' IMGPIPE_FIRESTORE_DATABASE); (default) is the project's default database."
  default     = "(default)"

  validation {
    condition     = var.firestore_database == "(default)" || can(regex("^[a-z][a-z0-9-]{2,61}[a-z0-9]$", var.firestore_database))
    error_message = "firestore_database must be (default) or 4 to 63 lower-case letters, digits and dashes."
  }
}

variable "firestore_location" {
  type        = string
  description = "Firestore location, a region (europe-west1) or a multi-region (eur3, nam5)."
}

variable "firestore_collection" {
  type        = string
  description = "Firestore collection of the index (the binaries' IMGPIPE_COLLECTION); its tombstones live in COLLECTION-tombstones."
  default     = "images"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,100}$", var.firestore_collection))
    error_message = "firestore_collection must be a plain collection ID."
  }
}

variable "gcp_operator_members" {
  type        = list(string)
  description = "IAM members (user:..., group:...) allowed to impersonate the uploader's and dlq-replay's service accounts from outside the cluster."
  default     = []
}

# ---- Azure ----

variable "azure_subscription_id" {
  type        = string
  description = "Azure subscription of the Vision account."
}

variable "azure_location" {
  type        = string
  description = "Azure region of the Vision account. Image Analysis 4.0 captions exist only in eastus, westus, francecentral, northeurope, westeurope, southeastasia, eastasia and koreacentral."
  default     = "westeurope"

  validation {
    condition     = contains(["eastus", "westus", "francecentral", "northeurope", "westeurope", "southeastasia", "eastasia", "koreacentral"], var.azure_location)
    error_message = "azure_location must be a region that offers Image Analysis 4.0 captions: eastus, westus, francecentral, northeurope, westeurope, southeastasia, eastasia or koreacentral."
  }
}

variable "azure_resource_group_name" {
  type        = string
  description = "Name of the resource group created for the Vision account and the analyzer's identity."
  default     = "imgpipe"
}

variable "vision_account_name" {
  type        = string
  description = "Name and custom subdomain of the Azure AI Vision account (the endpoint becomes https://NAME.cognitiveservices.azure.com; Entra ID tokens need the custom subdomain)."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$", var.vision_account_name))
    error_message = "vision_account_name must be 3 to 64 lower-case letters, digits and dashes."
  }
}

variable "vision_sku" {
  type        = string
  description = "Pricing tier of the Vision account: S1 (about 20 calls per second) or F0 (free, 20 calls per minute)."
  default     = "S1"

  validation {
    condition     = contains(["S1", "F0"], var.vision_sku)
    error_message = "vision_sku must be S1 or F0."
  }
}

variable "vision_key_auth" {
  type        = bool
  description = "Keep key authentication on the Vision account. false (the default) disables local auth: the analyzer uses Entra ID workload identity federation only."
  default     = false
}

variable "azure_federated_token_path" {
  type        = string
  description = "Where the analyzer's pod mounts the projected service account token for Entra ID, audience api://AzureADTokenExchange (the analyzer's AZURE_FEDERATED_TOKEN_FILE; the AKS workload identity webhook's path by default)."
  default     = "/var/run/secrets/azure/tokens/azure-identity-token"
}

variable "google_credentials_path" {
  type        = string
  description = "Outside GKE (EKS, AKS), where the pods mount the external_account configuration (GOOGLE_APPLICATION_CREDENTIALS)."
  default     = "/var/run/secrets/imgpipe/google/credentials.json"
}

variable "vision_key_path" {
  type        = string
  description = "With vision_key_auth, where the analyzer's pod mounts the key from a Secret (AZURE_VISION_KEY_FILE)."
  default     = "/var/run/secrets/imgpipe/vision/key"
}

variable "aws_web_identity_token_path" {
  type        = string
  description = "Outside EKS (GKE, AKS), where the pods mount the projected service account token with audience sts.amazonaws.com (AWS_WEB_IDENTITY_TOKEN_FILE; the IRSA webhook sets it on EKS)."
  default     = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"
}
