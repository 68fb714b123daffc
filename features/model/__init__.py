"""What a trained model is made of: the feature spec, the bundle on disk, labels and outcomes."""
