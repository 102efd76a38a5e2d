# A tenant syncing its own repository into two namespaces it administers (and nothing else),
# reconciled by the controllers of the shard shard_for places it on.
resource "gitlabflux_flux_tenant" "team_a" {
  name       = "team-a"
  namespaces = ["team-a", "team-a-staging"]
  source = {
    url         = "https://gitlab.example.com/team-a/deploy.git"
    ref         = { branch = "main" }
    secret_name = "team-a-git"
  }
  path     = "./clusters/prod"
  interval = "5m"
  shard    = provider::gitlabflux::shard_for("team-a", ["shard1", "shard2", "shard3"])
}
