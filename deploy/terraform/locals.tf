locals {
  # The binaries, as the identities and settings name them.
  binaries = ["analyzer", "indexer", "uploader", "dlq-replay", "console"]

  # The binaries that run in the cluster and reach Google Cloud. Outside GKE they federate
  # with their AWS roles: the pool's attribute condition admits exactly these roles.
  google_federated = ["analyzer", "indexer", "console"]

  # Kubernetes service account of each binary.
  kubernetes_service_accounts = {
    analyzer     = var.kubernetes_service_accounts.analyzer
    indexer      = var.kubernetes_service_accounts.indexer
    uploader     = var.kubernetes_service_accounts.uploader
    "dlq-replay" = var.kubernetes_service_accounts.dlq_replay
    console      = var.kubernetes_service_accounts.console
  }

  # The subject of each Kubernetes service account AWS and Azure trust, by identity: every
  # binary's, and KEDA's operator's.
  kubernetes_subjects = merge(
    { for b, sa in local.kubernetes_service_accounts : b => "system:serviceaccount:${var.kubernetes_namespace}:${sa}" },
    { keda = "system:serviceaccount:${var.keda_service_account.namespace}:${var.keda_service_account.name}" },
  )

  # The issuer without its scheme, as AWS names the OIDC provider and its condition keys.
  issuer_host = trimprefix(var.kubernetes_oidc_issuer_url, "https://")

  # SQS keeps a dead-lettered message at most 14 days: the dead-letter queue keeps that long.
  dlq_retention_seconds = 1209600

  # Custom role IDs allow letters, digits, underscores and dots only.
  role_prefix = replace(var.name_prefix, "-", "_")

  firestore_database_name = "projects/${var.gcp_project_id}/databases/${var.firestore_database}"
}
