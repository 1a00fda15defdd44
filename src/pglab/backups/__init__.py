"""Backups and point-in-time restore through pgBackRest: take and list backups, restore a lab in
place, what a restore aims at, and the scratch restore that proves the latest backup."""
