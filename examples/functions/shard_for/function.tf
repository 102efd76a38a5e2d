locals {
  shards  = ["shard1", "shard2", "shard3"]
  tenants = ["team-a", "team-b", "team-c", "team-d"]
}

# Which shard each tenant's Flux objects are reconciled by.
output "tenant_shards" {
  value = { for t in local.tenants : t => provider::gitlabflux::shard_for(t, local.shards) }
}
