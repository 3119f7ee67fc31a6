"""Campaigns and broadcasts (issue #14): audiences, approval, sending at scale."""
