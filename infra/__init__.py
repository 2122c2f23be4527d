"""The CDK app that deploys the glaucoma screening service."""
