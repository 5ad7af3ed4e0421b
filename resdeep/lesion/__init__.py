"""Lesion studies of trained nets (Veit et al. 2016): delete or reorder blocks at test time, and
measure how much of the gradient flows through paths of each length."""
