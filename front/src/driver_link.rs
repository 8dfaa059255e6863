//! Spawning and supervising the HM_MAD driver.
