"""The console's nav in a browser: at phone width its links sit behind the Menu button (a checkbox and its
label, no JavaScript), so a test that follows a nav link opens the menu first when it is folded."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver


def open_menu(driver: WebDriver) -> None:
    """Unfold the menu if this width folds it (a click on its label, as a thumb would)."""
    button = driver.find_element(By.CSS_SELECTOR, "header.bar .menu-button")
    if button.is_displayed() and not driver.find_element(By.ID, "menu-toggle").is_selected():
        button.click()


def follow_nav(driver: WebDriver, text: str) -> None:
    """Click the console nav's link `text`, at whatever width the window has."""
    open_menu(driver)
    driver.find_element(By.CSS_SELECTOR, "header.bar nav").find_element(By.LINK_TEXT, text).click()


def log_out(driver: WebDriver) -> None:
    open_menu(driver)
    driver.find_element(By.CSS_SELECTOR, "header.bar button").click()


def lines(driver: WebDriver, css: str) -> int:
    """How many lines the displayed elements `css` matches take: elements share a line when their heights
    overlap (a button is taller than a link beside it)."""
    boxes = sorted((e.rect["y"], e.rect["y"] + e.rect["height"]) for e in driver.find_elements(By.CSS_SELECTOR, css)
                   if e.is_displayed())
    count, bottom = 0, float("-inf")
    for top, end in boxes:
        if top >= bottom:
            count, bottom = count + 1, end
        else:
            bottom = min(bottom, end)
    return count
