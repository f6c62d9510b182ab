"""The devices module: manufacturers, certified device identities, owners, revocation."""
