# Addresses before the Google Cloud custom roles and their bindings became one resource each
# over local.gcp_roles: an existing state moves to the new addresses instead of destroying
# the roles (a deleted custom role keeps its ID for weeks, so re-creating it would fail).

moved {
  from = google_project_iam_custom_role.analyzer_topic
  to   = google_project_iam_custom_role.binary["analyzer_topic"]
}

moved {
  from = google_project_iam_custom_role.indexer_subscription
  to   = google_project_iam_custom_role.binary["indexer_subscription"]
}

moved {
  from = google_project_iam_custom_role.indexer_dead_letter_topic
  to   = google_project_iam_custom_role.binary["indexer_dead_letter_topic"]
}

moved {
  from = google_project_iam_custom_role.indexer_firestore
  to   = google_project_iam_custom_role.binary["indexer_firestore"]
}

moved {
  from = google_project_iam_custom_role.uploader_firestore
  to   = google_project_iam_custom_role.binary["uploader_firestore"]
}

moved {
  from = google_project_iam_custom_role.console_firestore
  to   = google_project_iam_custom_role.binary["console_firestore"]
}

moved {
  from = google_project_iam_custom_role.console_dead_letter_subscription
  to   = google_project_iam_custom_role.binary["console_dead_letter_subscription"]
}

moved {
  from = google_project_iam_custom_role.dlq_replay_dead_letter_subscription
  to   = google_project_iam_custom_role.binary["dlq_replay_dead_letter_subscription"]
}

moved {
  from = google_project_iam_custom_role.dlq_replay_topic
  to   = google_project_iam_custom_role.binary["dlq_replay_topic"]
}

moved {
  from = google_pubsub_topic_iam_member.analyzer
  to   = google_pubsub_topic_iam_member.binary["analyzer_topic"]
}

moved {
  from = google_pubsub_subscription_iam_member.indexer
  to   = google_pubsub_subscription_iam_member.binary["indexer_subscription"]
}

moved {
  from = google_pubsub_topic_iam_member.indexer_dead_letter
  to   = google_pubsub_topic_iam_member.binary["indexer_dead_letter_topic"]
}

moved {
  from = google_project_iam_member.indexer_firestore
  to   = google_project_iam_member.binary["indexer_firestore"]
}

moved {
  from = google_project_iam_member.uploader_firestore
  to   = google_project_iam_member.binary["uploader_firestore"]
}

moved {
  from = google_project_iam_member.console_firestore
  to   = google_project_iam_member.binary["console_firestore"]
}

moved {
  from = google_pubsub_subscription_iam_member.console
  to   = google_pubsub_subscription_iam_member.binary["console_dead_letter_subscription"]
}

moved {
  from = google_pubsub_subscription_iam_member.dlq_replay
  to   = google_pubsub_subscription_iam_member.binary["dlq_replay_dead_letter_subscription"]
}

moved {
  from = google_pubsub_topic_iam_member.dlq_replay
  to   = google_pubsub_topic_iam_member.binary["dlq_replay_topic"]
}

# Likewise the AWS inline policies, one resource over local.aws_statements.

moved {
  from = aws_iam_role_policy.analyzer
  to   = aws_iam_role_policy.binary["analyzer"]
}

moved {
  from = aws_iam_role_policy.console
  to   = aws_iam_role_policy.binary["console"]
}

moved {
  from = aws_iam_role_policy.uploader
  to   = aws_iam_role_policy.binary["uploader"]
}

moved {
  from = aws_iam_role_policy.dlq_replay
  to   = aws_iam_role_policy.binary["dlq-replay"]
}
