# The Firestore database with the composite indexes and the tombstone TTL policy declared in
# deploy/firestore/firestore.indexes.json (deploy/terraform's tests check they agree).

resource "google_firestore_database" "index" {
  name                    = var.firestore_database
  location_id             = var.firestore_location
  type                    = "FIRESTORE_NATIVE"
  delete_protection_state = "DELETE_PROTECTION_ENABLED"
}

# indexer search TAG: tagNames array-contains, newest first.
resource "google_firestore_index" "tags_by_time" {
  database    = google_firestore_database.index.name
  collection  = var.firestore_collection
  query_scope = "COLLECTION"

  fields {
    field_path   = "tagNames"
    array_config = "CONTAINS"
  }

  fields {
    field_path = "analyzedAt"
    order      = "DESCENDING"
  }
}

# Listing a bucket in key order.
resource "google_firestore_index" "bucket_keys" {
  database    = google_firestore_database.index.name
  collection  = var.firestore_collection
  query_scope = "COLLECTION"

  fields {
    field_path = "bucket"
    order      = "ASCENDING"
  }

  fields {
    field_path = "key"
    order      = "ASCENDING"
  }
}

# Tombstones expire at expireAt; the field is never queried, so it is not indexed.
resource "google_firestore_field" "tombstone_ttl" {
  database   = google_firestore_database.index.name
  collection = "${var.firestore_collection}-tombstones"
  field      = "expireAt"

  ttl_config {}

  index_config {}
}
