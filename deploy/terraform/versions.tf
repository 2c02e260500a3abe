# imgpipe's infrastructure on its three clouds, as one root module (Terraform >= 1.6 or
# OpenTofu >= 1.6). See README.md beside this file and docs/identity.md.

terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.81, < 7.0"
    }
    google = {
      source  = "hashicorp/google"
      version = ">= 6.10, < 8.0"
    }
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.0, < 5.0"
    }
  }
}

provider "aws" {
  region = var.aws_region
}

provider "google" {
  project = var.gcp_project_id
}

provider "azurerm" {
  features {}
  subscription_id = var.azure_subscription_id
}
