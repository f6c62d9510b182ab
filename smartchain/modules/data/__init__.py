"""The data module: device data sold only with the owner's consent; keys after payment."""
