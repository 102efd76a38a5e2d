clusters = {
  us-1 = { config_context = "us-1" }
}
tenants = {
  team-a = "ssh://git@gitlab.example.com/team-a/deploy.git"
}
