locals {
  # The binaries, as the identities and settings name them.
  binaries = ["analyzer", "indexer", "uploader", "dlq-replay"]

  # Kubernetes service account of each binary.
  kubernetes_service_accounts = {
    analyzer     = var.kubernetes_service_accounts.analyzer
    indexer      = var.kubernetes_service_accounts.indexer
    uploader     = var.kubernetes_service_accounts.uploader
    "dlq-replay" = var.kubernetes_service_accounts.dlq_replay
  }

  # The issuer without its scheme, as AWS names the OIDC provider and its condition keys.
  issuer_host = trimprefix(var.kubernetes_oidc_issuer_url, "https://")

  # SQS keeps a dead-lettered message at most 14 days: the dead-letter queue keeps that long.
  dlq_retention_seconds = 1209600

  # Custom role IDs allow letters, digits, underscores and dots only.
  role_prefix = replace(var.name_prefix, "-", "_")

  firestore_database_name = "projects/${var.gcp_project_id}/databases/${var.firestore_database}"
}
