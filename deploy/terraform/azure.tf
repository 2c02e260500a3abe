# Azure AI Vision for the analyzer, reached without a key: a user-assigned managed identity
# trusts the analyzer's Kubernetes service account tokens (workload identity federation) and
# holds the Cognitive Services User role on the account only.

data "azurerm_client_config" "current" {}

resource "azurerm_resource_group" "imgpipe" {
  name     = var.azure_resource_group_name
  location = var.azure_location
}

resource "azurerm_cognitive_account" "vision" {
  name                = var.vision_account_name
  location            = azurerm_resource_group.imgpipe.location
  resource_group_name = azurerm_resource_group.imgpipe.name
  kind                = "ComputerVision"
  sku_name            = var.vision_sku

  # Entra ID tokens are accepted only on the account's own subdomain.
  custom_subdomain_name = var.vision_account_name

  # Keys off unless asked for: with Entra ID only, a leaked key is worth nothing.
  local_auth_enabled = var.vision_key_auth
}

resource "azurerm_user_assigned_identity" "analyzer" {
  name                = "${var.name_prefix}-analyzer"
  location            = azurerm_resource_group.imgpipe.location
  resource_group_name = azurerm_resource_group.imgpipe.name
}

resource "azurerm_federated_identity_credential" "analyzer" {
  name                = "${var.name_prefix}-analyzer-kubernetes"
  resource_group_name = azurerm_resource_group.imgpipe.name
  parent_id           = azurerm_user_assigned_identity.analyzer.id
  audience            = ["api://AzureADTokenExchange"]
  issuer              = var.kubernetes_oidc_issuer_url
  subject             = local.kubernetes_subjects["analyzer"]
}

resource "azurerm_role_assignment" "analyzer_vision" {
  scope                = azurerm_cognitive_account.vision.id
  role_definition_name = "Cognitive Services User"
  principal_id         = azurerm_user_assigned_identity.analyzer.principal_id
  principal_type       = "ServicePrincipal"
}
