# One service account per binary, with custom roles holding exactly the permissions of the
# calls the binary makes (deploy/terraform's tests derive them from the code and compare),
# each bound on the one resource it is for.

resource "google_service_account" "binary" {
  for_each     = local.kubernetes_service_accounts
  account_id   = "${var.name_prefix}-${each.key}"
  display_name = "imgpipe ${each.key}"
}

# The custom roles, one per binary and resource it is bound on: on = "topic" and
# "subscription" bind on that Pub/Sub resource (resource), "database" on the project with a
# condition naming the index database only (no resource: the condition names it). The key is
# the role ID's suffix.
locals {
  gcp_roles = {
    # analyzer: publishes analysis records.
    analyzer_topic = {
      binary      = "analyzer"
      title       = "imgpipe analyzer on the analyses topic"
      on          = "topic"
      resource    = google_pubsub_topic.analyses.id
      permissions = ["pubsub.topics.publish"]
    }

    # indexer: pulls the subscription, copies what can never be indexed to the dead-letter
    # topic, reads and writes the index in transactions, answers get and search.
    indexer_subscription = {
      binary      = "indexer"
      title       = "imgpipe indexer on its subscription"
      on          = "subscription"
      resource    = google_pubsub_subscription.indexer.id
      permissions = ["pubsub.subscriptions.consume", "pubsub.subscriptions.get"]
    }
    indexer_dead_letter_topic = {
      binary      = "indexer"
      title       = "imgpipe indexer on the dead-letter topic"
      on          = "topic"
      resource    = google_pubsub_topic.dead_letter.id
      permissions = ["pubsub.topics.publish"]
    }
    indexer_firestore = {
      binary = "indexer"
      title  = "imgpipe indexer on the index database"
      on     = "database"
      permissions = [
        "datastore.databases.get", "datastore.entities.create", "datastore.entities.delete",
        "datastore.entities.get", "datastore.entities.list", "datastore.entities.update",
      ]
    }

    # uploader: looks analyses up (status, wait).
    uploader_firestore = {
      binary      = "uploader"
      title       = "imgpipe uploader on the index database"
      on          = "database"
      permissions = ["datastore.entities.get"]
    }

    # console: reads the index, scans the dead-letter subscription (receives and releases).
    console_firestore = {
      binary      = "console"
      title       = "imgpipe console on the index database"
      on          = "database"
      permissions = ["datastore.entities.get", "datastore.entities.list"]
    }
    console_dead_letter_subscription = {
      binary      = "console"
      title       = "imgpipe console on the dead-letter subscription"
      on          = "subscription"
      resource    = google_pubsub_subscription.dead_letter.id
      permissions = ["pubsub.subscriptions.consume"]
    }

    # dlq-replay: reads the dead-letter subscription, replays to the analyses topic.
    dlq_replay_dead_letter_subscription = {
      binary      = "dlq-replay"
      title       = "imgpipe dlq-replay on the dead-letter subscription"
      on          = "subscription"
      resource    = google_pubsub_subscription.dead_letter.id
      permissions = ["pubsub.subscriptions.consume"]
    }
    dlq_replay_topic = {
      binary      = "dlq-replay"
      title       = "imgpipe dlq-replay on the analyses topic"
      on          = "topic"
      resource    = google_pubsub_topic.analyses.id
      permissions = ["pubsub.topics.publish"]
    }
  }
}

resource "google_project_iam_custom_role" "binary" {
  for_each    = local.gcp_roles
  role_id     = "${local.role_prefix}_${each.key}"
  title       = each.value.title
  permissions = each.value.permissions
}

resource "google_pubsub_topic_iam_member" "binary" {
  for_each = { for k, r in local.gcp_roles : k => r if r.on == "topic" }
  topic    = each.value.resource
  role     = google_project_iam_custom_role.binary[each.key].id
  member   = "serviceAccount:${google_service_account.binary[each.value.binary].email}"
}

resource "google_pubsub_subscription_iam_member" "binary" {
  for_each     = { for k, r in local.gcp_roles : k => r if r.on == "subscription" }
  subscription = each.value.resource
  role         = google_project_iam_custom_role.binary[each.key].id
  member       = "serviceAccount:${google_service_account.binary[each.value.binary].email}"
}

resource "google_project_iam_member" "binary" {
  for_each = { for k, r in local.gcp_roles : k => r if r.on == "database" }
  project  = var.gcp_project_id
  role     = google_project_iam_custom_role.binary[each.key].id
  member   = "serviceAccount:${google_service_account.binary[each.value.binary].email}"

  condition {
    title      = "imgpipe index database only"
    expression = "resource.name == \"${local.firestore_database_name}\""
  }
}

# ---- who may act as the service accounts ----

# Outside GKE (EKS, AKS): workload identity federation from AWS. The pool's AWS provider
# accepts only the roles of the binaries that run in the cluster and reach Google Cloud
# (local.google_federated: analyzer, indexer, console); each may impersonate its own service
# account only.
resource "google_iam_workload_identity_pool" "aws" {
  count                     = var.runtime != "gke" ? 1 : 0
  workload_identity_pool_id = "${var.name_prefix}-aws"
  display_name              = "imgpipe from AWS"
}

resource "google_iam_workload_identity_pool_provider" "aws" {
  count                              = var.runtime != "gke" ? 1 : 0
  workload_identity_pool_id          = google_iam_workload_identity_pool.aws[0].workload_identity_pool_id
  workload_identity_pool_provider_id = "aws"
  display_name                       = "imgpipe AWS account"

  aws {
    account_id = data.aws_caller_identity.current.account_id
  }

  attribute_mapping = {
    "google.subject"     = "assertion.arn"
    "attribute.aws_role" = "assertion.arn.contains('assumed-role') ? assertion.arn.extract('{account_arn}assumed-role/') + 'assumed-role/' + assertion.arn.extract('assumed-role/{role_name}/') : assertion.arn"
  }

  attribute_condition = "attribute.aws_role in [${join(", ", [for b in local.google_federated : "'${local.aws_assumed_role[b]}'"])}]"
}

locals {
  # The principal an assumed role becomes in the pool: its role ARN in sts form.
  aws_assumed_role = {
    for b in local.binaries : b => "arn:${data.aws_partition.current.partition}:sts::${data.aws_caller_identity.current.account_id}:assumed-role/${aws_iam_role.binary[b].name}"
  }
}

resource "google_service_account_iam_member" "from_aws" {
  for_each           = var.runtime != "gke" ? toset(local.google_federated) : toset([])
  service_account_id = google_service_account.binary[each.key].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.aws[0].name}/attribute.aws_role/${local.aws_assumed_role[each.key]}"
}

# On GKE: GKE workload identity, each Kubernetes service account as its own service account.
resource "google_service_account_iam_member" "from_gke" {
  for_each           = var.runtime == "gke" ? local.kubernetes_service_accounts : {}
  service_account_id = google_service_account.binary[each.key].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.gcp_project_id}.svc.id.goog[${var.kubernetes_namespace}/${each.value}]"
}

# Operators run uploader status and dlq-replay as these service accounts
# (gcloud auth application-default login --impersonate-service-account=...).
resource "google_service_account_iam_member" "operators" {
  for_each = {
    for pair in setproduct(["uploader", "dlq-replay"], var.gcp_operator_members) : "${pair[0]} ${pair[1]}" => { binary = pair[0], member = pair[1] }
  }
  service_account_id = google_service_account.binary[each.value.binary].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = each.value.member
}

# The external_account configuration each federated binary reads (GOOGLE_APPLICATION_CREDENTIALS).
# No secret: the AWS credentials come from the pod's own identity.
locals {
  google_credentials = var.runtime != "gke" ? {
    for b in local.google_federated : b => jsonencode({
      type                              = "external_account"
      audience                          = "//iam.googleapis.com/${google_iam_workload_identity_pool_provider.aws[0].name}"
      subject_token_type                = "urn:ietf:params:aws:token-type:aws4_request"
      token_url                         = "https://sts.googleapis.com/v1/token"
      service_account_impersonation_url = "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/${google_service_account.binary[b].email}:generateAccessToken"
      credential_source = {
        environment_id                 = "aws1"
        region_url                     = "http://169.254.169.254/latest/meta-data/placement/availability-zone"
        url                            = "http://169.254.169.254/latest/meta-data/iam/security-credentials"
        regional_cred_verification_url = "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
      }
    })
  } : {}
}
