# The eu group: its clusters (contexts of the kubeconfig the CI job is given) and tenants.
clusters = {
  eu-1 = { config_context = "eu-1" }
  eu-2 = { config_context = "eu-2" }
}
tenants = {
  team-a = "ssh://git@gitlab.example.com/team-a/deploy.git"
  team-b = "ssh://git@gitlab.example.com/team-b/deploy.git"
}
