# The analysis records' topic, the indexer's subscription with its dead-letter and retry
# policies, the dead-letter topic and the subscription dlq-replay reads it from.

data "google_project" "current" {
  project_id = var.gcp_project_id
}

resource "google_pubsub_topic" "analyses" {
  name = "${var.name_prefix}-analyses"
}

resource "google_pubsub_topic" "dead_letter" {
  name = "${var.name_prefix}-analyses-dead-letter"
}

# No message ordering: the indexer orders by the S3 sequencer itself, and ordering would
# serialise each object's records.
resource "google_pubsub_subscription" "indexer" {
  name                       = "${var.name_prefix}-indexer"
  topic                      = google_pubsub_topic.analyses.id
  ack_deadline_seconds       = var.pubsub_ack_deadline_seconds
  message_retention_duration = "604800s"

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.pubsub_max_delivery_attempts
  }

  retry_policy {
    minimum_backoff = var.pubsub_retry_backoff.minimum
    maximum_backoff = var.pubsub_retry_backoff.maximum
  }

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "dead_letter" {
  name                       = "${var.name_prefix}-analyses-dead-letter"
  topic                      = google_pubsub_topic.dead_letter.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}

# Dead-lettering is done by the Pub/Sub service agent: it must publish to the dead-letter
# topic and acknowledge on the source subscription, or Pub/Sub retries forever.
locals {
  pubsub_service_agent = "serviceAccount:service-${data.google_project.current.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic_iam_member" "service_agent_dead_letter" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "service_agent_source" {
  subscription = google_pubsub_subscription.indexer.id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
