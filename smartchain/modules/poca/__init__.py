"""POCA: signers by proven competence and votes (Smart Chain §3.3, Smartshare ch. II §3)."""
